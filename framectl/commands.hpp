#pragma once
// One function per subcommand (framectl.1, COMMANDS). Each returns
// framectl's exit status, or throws Failure.

#include <string>
#include <vector>

#include "session.hpp"

namespace framed::framectl {

// basic_commands.cpp
int run_ping(const Session& session);
// echo and upper: `words` joined by spaces, or stdin when they are just "-".
int run_text(const Session& session, const std::string& command, const std::vector<std::string>& words);
// reset: answer the counters, then zero them on the daemon.
int run_stats(const Session& session, bool reset);
int run_help(const Session& session);

// exec_command.cpp: `args` starting with "-" send framectl's stdin.
int run_exec(const Session& session, const std::string& name, std::vector<std::string> args, bool follow);

// file_commands.cpp
int run_put(const Session& session, const std::string& file, std::string name);
int run_get(const Session& session, const std::string& name, const std::string& file, bool resume);
int run_list(const Session& session, const std::string& prefix);
int run_delete(const Session& session, const std::string& name);

// pubsub_commands.cpp
int run_publish(const Session& session, const std::string& channel, const std::string& message);
int run_subscribe(const Session& session, const std::vector<std::string>& channels);

// simple_mode.cpp: any of the above that simple mode can carry, as the
// payload "COMMAND ARGS".
int run_simple(const Session& session, const std::string& command, const std::string& arguments);

}  // namespace framed::framectl
