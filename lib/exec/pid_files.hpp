#pragma once
// Reading the small kernel files and directories that list or describe
// processes (/proc, /proc/PID/stat, /proc/PID/task/TID/children, a cgroup's
// directory and its cgroup.procs),
// shared by the two ways a run is contained (orphan_reaper.hpp,
// run_cgroup.hpp).

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace framed::exec {

// A pid written in decimal, nothing else; nullopt otherwise.
std::optional<pid_t> parse_pid(std::string_view text);

// The pids in a list separated by spaces or newlines.
std::vector<pid_t> parse_pid_list(std::string_view text);

// The whole of a small file, relative to `directory` (AT_FDCWD for a path),
// or nullopt if it is gone (a process that exited meanwhile) or unreadable.
std::optional<std::string> read_small_file(int directory, const std::string& path);

// The names in a directory (relative to `directory`, as above), "." and
// ".." left out; empty if it cannot be read.
std::vector<std::string> directory_entries(int directory, const std::string& path);

}  // namespace framed::exec
