// framectl: the command-line client of framed (framectl.1). Parses the
// command line with CLI11, picks the target and the framing, runs one
// subcommand and turns any failure into "framectl: CODE: MESSAGE" and its
// exit status.

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "failure.hpp"
#include "framed_build_config.hpp"
#include "output.hpp"

namespace framed::framectl {
namespace {

struct GlobalOptions {
  std::string tcp;
  std::string unix_path;
  std::string udp;
  std::string framing;
  double timeout_seconds = 30;
  bool json = false;
  std::string token_file;
  bool tls = false;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  bool tls_insecure = false;
};

// The token for auth = "token" listeners: from a file (its first line) or
// $FRAMED_TOKEN, never from the command line, where every user's `ps`
// would show it.
std::optional<std::string> read_token(const GlobalOptions& options) {
  if (options.token_file.empty()) {
    const char* from_env = std::getenv("FRAMED_TOKEN");
    if (from_env == nullptr || *from_env == '\0') return std::nullopt;
    return std::string(from_env);
  }
  std::ifstream file(options.token_file);
  std::string token;
  if (!file || !std::getline(file, token)) fail_usage(concat("cannot read a token from ", options.token_file));
  if (!token.empty() && token.back() == '\r') token.pop_back();
  if (token.empty()) fail_usage(concat(options.token_file, ": the first line is empty; it should hold the token"));
  return token;
}

Session make_session(const GlobalOptions& options) {
  const int given = !options.tcp.empty() + !options.unix_path.empty() + !options.udp.empty();
  if (given > 1) fail_usage("give at most one of --tcp, --unix and --udp");
  Target target = !options.tcp.empty()         ? make_target(Transport::tcp, options.tcp)
                  : !options.unix_path.empty() ? make_target(Transport::unix_stream, options.unix_path)
                  : !options.udp.empty()       ? make_target(Transport::udp, options.udp)
                                               : default_target();
  const bool tls_options = !options.tls_ca.empty() || !options.tls_cert.empty() || !options.tls_key.empty() ||
                           options.tls_insecure;
  if (tls_options && !options.tls) fail_usage("--tls-ca, --tls-cert, --tls-key and --tls-insecure need --tls");
  if (options.tls) {
    if (target.transport != Transport::tcp) fail_usage("--tls is for TCP (--tcp HOST:PORT)");
    if (!options.tls_key.empty() && options.tls_cert.empty()) fail_usage("--tls-key needs --tls-cert");
    const std::string address = options.tcp.empty() ? target.description.substr(4) : options.tcp;
    TlsOptions tls;
    tls.host_name = address.substr(0, address.rfind(':'));
    if (tls.host_name.size() > 2 && tls.host_name.front() == '[') tls.host_name = tls.host_name.substr(1, tls.host_name.size() - 2);
    if (!options.tls_ca.empty()) tls.ca_file = options.tls_ca;
    if (!options.tls_cert.empty()) tls.certificate = options.tls_cert;
    if (!options.tls_key.empty()) tls.private_key = options.tls_key;
    tls.insecure = options.tls_insecure;
    target.tls = std::move(tls);
  }
  codec::Framing framing = codec::Framing::json;
  if (!options.framing.empty()) {
    if (target.transport == Transport::udp) fail_usage("--framing is for stream sockets; UDP carries text datagrams");
    if (options.framing == "json") {
      framing = codec::Framing::json;
    } else if (options.framing == "length") {
      framing = codec::Framing::length;
    } else if (options.framing == "line") {
      framing = codec::Framing::line;
    } else {
      fail_usage(concat("--framing is json, length or line, not '", options.framing, "'"));
    }
  }
  if (!(options.timeout_seconds > 0) || options.timeout_seconds > 86400) {
    fail_usage("--timeout is a number of seconds above 0 (at most 86400)");
  }
  const auto timeout = static_cast<TimeoutMs>(std::ceil(options.timeout_seconds * 1000));
  Session session(std::move(target), framing, timeout, options.json);
  // UDP has no connection to authenticate: --token-file with --udp is a
  // mistake, a $FRAMED_TOKEN in the environment is simply not used.
  if (session.target().transport == Transport::udp) {
    if (!options.token_file.empty()) fail_usage("--token-file is for stream sockets (--tcp, --unix)");
  } else if (auto token = read_token(options)) {
    session.set_token(std::move(*token));
  }
  return session;
}

int run(int argc, char** argv) {
  CLI::App app{"framectl: talk to the framed daemon (see framectl(1))", "framectl"};
  app.set_version_flag("--version", std::string(FRAMED_VERSION));
  app.require_subcommand(1);
  // Global options may also follow the subcommand: `framectl stats --json`.
  app.fallthrough();
  // The words that echo, upper and exec take whole are "extras" to CLI11,
  // and it checks extras from the top: allowed here, and framectl's own
  // left-overs refused after parsing.
  app.allow_extras();

  GlobalOptions options;
  app.add_option("--tcp", options.tcp, "connect over TCP to HOST:PORT")->type_name("HOST:PORT");
  app.add_option("--unix", options.unix_path, "connect to the Unix stream socket PATH")->type_name("PATH");
  app.add_option("--udp", options.udp, "send text datagrams to HOST:PORT (simple mode)")->type_name("HOST:PORT");
  app.add_flag("--tls", options.tls, "speak TLS to a tcp listener with tls_cert");
  app.add_option("--tls-ca", options.tls_ca, "verify the daemon against this PEM CA (default: the system's)")
      ->type_name("FILE");
  app.add_option("--tls-cert", options.tls_cert, "present this PEM client certificate")->type_name("FILE");
  app.add_option("--tls-key", options.tls_key, "the client certificate's PEM key (default: in --tls-cert)")
      ->type_name("FILE");
  app.add_flag("--tls-insecure", options.tls_insecure, "do not verify the daemon's certificate (testing only)");
  app.add_option("--framing", options.framing, "json (default), length or line (simple mode)")
      ->type_name("FRAMING");
  app.add_option("--timeout", options.timeout_seconds, "seconds to wait for the daemon (default 30)")
      ->type_name("SECONDS");
  app.add_flag("--json", options.json, "machine-readable output: one JSON object per reply");
  app.add_option("--token-file", options.token_file,
                 "authenticate with the token on the first line of FILE (default: $FRAMED_TOKEN)")
      ->type_name("FILE");

  // What the subcommands' options and positionals are parsed into.
  struct Arguments {
    std::vector<std::string> words;
    std::string name;
    std::string file;
    std::string prefix;
    std::string channel;
    std::string message;
    std::vector<std::string> channels;
    bool follow = false;
    bool resume = false;
    bool reset_stats = false;
  } a;
  std::function<int(const Session&)> action;

  app.add_subcommand("ping", "check that the daemon answers")->callback([&] {
    action = [](const Session& s) { return run_ping(s); };
  });

  for (const std::string command : {"echo", "upper"}) {
    auto* sub = app.add_subcommand(command, command == "echo" ? "send TEXT (or stdin with -) and print it back"
                                                              : "print TEXT (or stdin with -) upper-cased by the daemon");
    // TEXT...: every word is text, even those that start with '-'.
    sub->prefix_command();
    sub->fallthrough(false);
    sub->callback([&action, &a, command, sub] {
      a.words = sub->remaining();
      if (a.words.empty()) fail_usage(concat(command, " needs TEXT, or - to read stdin"));
      action = [&a, command](const Session& s) { return run_text(s, command, a.words); };
    });
  }

  {
    auto* sub = app.add_subcommand("exec", "run a command configured in the daemon by NAME");
    sub->add_flag("--follow,-f", a.follow, "print the output while the command runs (\"stream\": true)");
    // NAME [ARGS...]: the ARGS belong to the command, options included
    // (`exec grep -n x`), so parsing stops at NAME.
    sub->prefix_command();
    sub->fallthrough(false);
    sub->callback([&action, &a, sub] {
      std::vector<std::string> words = sub->remaining();
      if (words.empty()) fail_usage("exec needs NAME, the command's configured name");
      a.name = words.front();
      words.erase(words.begin());
      action = [&a, args = std::move(words)](const Session& s) { return run_exec(s, a.name, args, a.follow); };
    });
  }

  {
    auto* sub = app.add_subcommand("put", "upload FILE as NAME (default: FILE's base name)");
    sub->add_option("file", a.file, "the local file")->required()->type_name("FILE");
    sub->add_option("name", a.name, "the name at the daemon")->type_name("NAME");
    sub->callback([&] { action = [&a](const Session& s) { return run_put(s, a.file, a.name); }; });
  }

  {
    auto* sub = app.add_subcommand("get", "download NAME to FILE (default: stdout)");
    sub->add_option("name", a.name, "the name at the daemon")->required()->type_name("NAME");
    sub->add_option("file", a.file, "the local file")->type_name("FILE");
    sub->add_flag("--continue,-c", a.resume, "continue a partial download into FILE from its size");
    sub->callback([&] { action = [&a](const Session& s) { return run_get(s, a.name, a.file, a.resume); }; });
  }

  {
    auto* sub = app.add_subcommand("list", "list the daemon's files (those whose name starts with PREFIX)");
    sub->add_option("prefix", a.prefix, "a name prefix")->type_name("PREFIX");
    sub->callback([&] { action = [&a](const Session& s) { return run_list(s, a.prefix); }; });
  }

  {
    auto* sub = app.add_subcommand("delete", "delete the daemon's file NAME");
    sub->add_option("name", a.name, "the name at the daemon")->required()->type_name("NAME");
    sub->callback([&] { action = [&a](const Session& s) { return run_delete(s, a.name); }; });
  }

  {
    auto* sub = app.add_subcommand("publish", "send MESSAGE to the subscribers of CHANNEL");
    sub->add_option("channel", a.channel, "the channel")->required()->type_name("CHANNEL");
    sub->add_option("message", a.message, "the message")->required()->type_name("MESSAGE");
    sub->callback([&] { action = [&a](const Session& s) { return run_publish(s, a.channel, a.message); }; });
  }

  {
    auto* sub = app.add_subcommand("subscribe", "print the messages of CHANNEL... until Ctrl-C");
    sub->add_option("channel", a.channels, "channels")->required()->type_name("CHANNEL");
    sub->callback([&] { action = [&a](const Session& s) { return run_subscribe(s, a.channels); }; });
  }

  {
    auto* sub = app.add_subcommand("stats", "print the daemon's counters");
    sub->add_flag("--reset", a.reset_stats, "then zero them on the daemon (gauges keep their values)");
    sub->callback([&] { action = [&a](const Session& s) { return run_stats(s, a.reset_stats); }; });
  }
  app.add_subcommand("help", "list the daemon's commands")->callback([&] {
    action = [](const Session& s) { return run_help(s); };
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fail_usage(e.what());
  }
  if (const auto extras = app.remaining(false); !extras.empty()) {
    fail_usage(concat("The following argument was not expected: ", extras.front()));
  }
  const Session session = make_session(options);
  return action(session);
}

}  // namespace
}  // namespace framed::framectl

int main(int argc, char** argv) {
  using framed::framectl::Failure;
  try {
    return framed::framectl::run(argc, argv);
  } catch (const Failure& failure) {
    std::string line = "framectl: ";
    line.append(failure.code());
    line.append(": ");
    line.append(failure.what());
    line.append("\n");
    std::fputs(line.c_str(), stderr);
    return static_cast<int>(failure.status());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "framectl: internal: %s\n", e.what());
    return 1;
  }
}
