#pragma once
// The command line of framed-bench. parse_options() validates every field
// against the limits in options.cpp, so the client never re-checks one.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace framed::bench {

enum class Command { ping, echo };
enum class Protocol { json, resp };
enum class ByteOrder { big, little };

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9000;
  std::string unix_path;  // non-empty: a Unix stream socket; "@name" = abstract
  unsigned connections = 1;
  unsigned pipeline = 1;  // requests in flight per connection
  double duration_s = 5.0;
  double warmup_s = 1.0;
  unsigned threads = 1;  // never more than connections (clamped)
  Command command = Command::ping;
  std::uint32_t size = 1024;  // echo body bytes
  Protocol protocol = Protocol::json;
  ByteOrder byte_order = ByteOrder::big;  // json header length prefix
  bool json_output = false;
};

struct ParseResult {
  std::optional<Options> options;  // set when valid and not --help
  bool help = false;
  std::string error;  // set when invalid
};

ParseResult parse_options(int argc, char** argv);
std::string usage();

std::string_view to_string(Command command);
std::string_view to_string(Protocol protocol);
std::string_view to_string(ByteOrder order);

}  // namespace framed::bench
