#pragma once
// What framed-bench and fanout-bench share on their command lines: walking
// argv (--name=value or --name value, --help, --json), the server options
// (--host, --port, --unix, --protocol, --byte-order), the number parsers
// and the bad-value messages.

#include <charconv>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace framed::bench {

// echo: framed-bench only; the request bytes of json, answered by the same
// bytes (bench/raw-echo-server: the ceiling with no framing at all).
enum class Protocol { json, resp, echo };
enum class ByteOrder { big, little };

enum ExitCode { kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitDeadline = 3, kExitInterrupted = 130 };

// Where and how to talk to the server; both tools' options extend it.
struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9000;
  std::string unix_path;  // non-empty: a Unix stream socket; "@name" = abstract
  Protocol protocol = Protocol::json;
  ByteOrder byte_order = ByteOrder::big;  // json header length prefix
  bool json_output = false;
};

std::string_view to_string(Protocol protocol);
std::string_view to_string(ByteOrder order);

// A decimal integer in [min, max], all of `text`.
template <class T>
bool parse_integer(std::string_view text, T min, T max, T& out) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return false;
  if (value < min || value > max) return false;
  out = static_cast<T>(value);
  return true;
}

// Seconds in [min, max], fractions and exponents allowed.
bool parse_seconds(std::string_view text, double min, double max, double& out);

// An option handler's verdict on one value: nullopt when it was taken,
// else what the value should have been ("a port (1-65535)").
using Verdict = std::optional<std::string>;
using OptionHandler = std::function<Verdict(std::string_view name, std::string_view value)>;

// A count in [1, max]; else "<what> (1-max)".
Verdict parse_count(std::string_view value, unsigned max, unsigned& out, std::string_view what);

// One of the named `choices`; else `what` ("json or resp").
template <class T>
Verdict parse_choice(std::string_view value, std::initializer_list<std::pair<std::string_view, T>> choices, T& out,
                     std::string_view what) {
  for (const auto& [name, choice] : choices) {
    if (value == name) {
      out = choice;
      return std::nullopt;
    }
  }
  return std::string(what);
}

struct CommandLine {
  bool help = false;
  std::string error;  // set when invalid
};

// Walks argv. --help and -h stop the walk; --json sets server.json_output;
// the server options go to `server`; every option in `valued` goes to
// `handle` with its value; every option in `flags` takes no value and goes
// to `handle` with an empty one. Anything else is an error.
CommandLine walk_command_line(int argc, char** argv, std::initializer_list<std::string_view> valued,
                              ServerOptions& server, const OptionHandler& handle,
                              std::initializer_list<std::string_view> flags = {});

// Prints --help's text or the command line's error for `program`; returns
// the exit status when the run should not go on.
std::optional<int> finish_command_line(std::string_view program, const CommandLine& parsed, const std::string& usage);

}  // namespace framed::bench
