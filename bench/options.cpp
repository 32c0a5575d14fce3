#include "options.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace framed::bench {
namespace {

// Past ~28k connections loopback runs out of ephemeral ports
// (ip_local_port_range) anyway; 100k leaves room for Unix sockets.
constexpr unsigned kMaxConnections = 100000;
// The daemon's default limits.max_pending_replies is 1024; beyond a few
// thousand a deeper pipeline measures queueing, not the server.
constexpr unsigned kMaxPipeline = 65536;
// One epoll loop per thread; more threads than this only adds contention.
constexpr unsigned kMaxThreads = 1024;
// The daemon's default limits.max_body (64 MiB); Redis allows 512 MB.
constexpr std::uint32_t kMaxSize = 64U << 20;
// A benchmark longer than a day is a mistake on the command line.
constexpr double kMaxDurationS = 86400.0;
constexpr double kMaxWarmupS = 3600.0;
// Every connection may hold pipeline requests of size bytes in its send
// buffer at once; refuse runs whose buffers alone would exceed this.
constexpr double kMaxInFlightBytes = 4.0 * (1ULL << 30);

template <class T>
bool parse_integer(std::string_view text, T min, T max, T& out) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return false;
  if (value < min || value > max) return false;
  out = static_cast<T>(value);
  return true;
}

bool parse_seconds(std::string_view text, double min, double max, double& out) {
  // strtod needs a terminated string; from_chars for double would do, but
  // strtod also accepts the "1e-1" forms people type.
  const std::string copy(text);
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (copy.empty() || end != copy.c_str() + copy.size() || !std::isfinite(value)) return false;
  if (value < min || value > max) return false;
  out = value;
  return true;
}

}  // namespace

std::string_view to_string(Command command) { return command == Command::ping ? "ping" : "echo"; }
std::string_view to_string(Protocol protocol) { return protocol == Protocol::json ? "json" : "resp"; }
std::string_view to_string(ByteOrder order) { return order == ByteOrder::big ? "big" : "little"; }

std::string usage() {
  return "usage: framed-bench [options]\n"
         "Closed-loop request/reply load generator for framed (json framing) or Redis (RESP).\n"
         "\n"
         "  --host HOST           server address (default 127.0.0.1)\n"
         "  --port PORT           server port (default 9000)\n"
         "  --unix PATH           connect to a Unix stream socket instead (@name = abstract)\n"
         "  --connections N       connections (default 1)\n"
         "  --pipeline P          requests in flight per connection (default 1)\n"
         "  --duration SECONDS    measured time, may be fractional (default 5)\n"
         "  --warmup SECONDS      unmeasured time before it (default 1)\n"
         "  --threads T           client threads, each with its own epoll loop (default 1)\n"
         "  --command ping|echo   request to send (default ping)\n"
         "  --size BYTES          echo body size (default 1024)\n"
         "  --protocol json|resp  framed json framing, or Redis RESP (default json)\n"
         "  --byte-order big|little  json header length byte order (default big)\n"
         "  --json                print a one-line JSON result\n"
         "  --help                this text\n"
         "\n"
         "Exit status: 0 ok; 1 errors or no replies; 2 bad command line or setup; 3 hard deadline hit.\n";
}

ParseResult parse_options(int argc, char** argv) {
  ParseResult result;
  Options options;
  auto fail = [&result](std::string message) {
    result.error = std::move(message);
    return result;
  };

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view name = arg;
    std::optional<std::string_view> inline_value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }

    if (name == "--help" || name == "-h") {
      result.help = true;
      return result;
    }
    if (name == "--json") {
      if (inline_value) return fail("--json takes no value");
      options.json_output = true;
      continue;
    }

    static constexpr std::string_view kValued[] = {"--host",    "--port",    "--unix",     "--connections",
                                                   "--pipeline", "--threads", "--duration", "--warmup",
                                                   "--size",     "--command", "--protocol", "--byte-order"};
    if (std::find(std::begin(kValued), std::end(kValued), name) == std::end(kValued)) {
      return fail("unknown option " + std::string(arg));
    }
    std::string_view value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return fail(std::string(name) + " needs a value");
    }
    auto bad = [&](std::string_view what) {
      return fail(std::string(name) + ": '" + std::string(value) + "' is not " + std::string(what));
    };

    if (name == "--host") {
      if (value.empty()) return bad("a host");
      options.host = value;
    } else if (name == "--port") {
      if (!parse_integer<std::uint16_t>(value, 1, 65535, options.port)) return bad("a port (1-65535)");
    } else if (name == "--unix") {
      if (value.empty() || value == "@") return bad("a socket path");
      options.unix_path = value;
    } else if (name == "--connections") {
      if (!parse_integer(value, 1U, kMaxConnections, options.connections)) {
        return bad("a connection count (1-" + std::to_string(kMaxConnections) + ")");
      }
    } else if (name == "--pipeline") {
      if (!parse_integer(value, 1U, kMaxPipeline, options.pipeline)) {
        return bad("a pipeline depth (1-" + std::to_string(kMaxPipeline) + ")");
      }
    } else if (name == "--threads") {
      if (!parse_integer(value, 1U, kMaxThreads, options.threads)) {
        return bad("a thread count (1-" + std::to_string(kMaxThreads) + ")");
      }
    } else if (name == "--duration") {
      // Zero would divide the request count by nothing.
      if (!parse_seconds(value, 0.001, kMaxDurationS, options.duration_s)) return bad("a duration (0.001-86400 s)");
    } else if (name == "--warmup") {
      if (!parse_seconds(value, 0.0, kMaxWarmupS, options.warmup_s)) return bad("a warmup (0-3600 s)");
    } else if (name == "--size") {
      if (!parse_integer<std::uint32_t>(value, 0, kMaxSize, options.size)) {
        return bad("a size (0-" + std::to_string(kMaxSize) + " bytes)");
      }
    } else if (name == "--command") {
      if (value == "ping") {
        options.command = Command::ping;
      } else if (value == "echo") {
        options.command = Command::echo;
      } else {
        return bad("ping or echo");
      }
    } else if (name == "--protocol") {
      if (value == "json") {
        options.protocol = Protocol::json;
      } else if (value == "resp") {
        options.protocol = Protocol::resp;
      } else {
        return bad("json or resp");
      }
    } else if (name == "--byte-order") {
      if (value == "big") {
        options.byte_order = ByteOrder::big;
      } else if (value == "little") {
        options.byte_order = ByteOrder::little;
      } else {
        return bad("big or little");
      }
    }
  }

  if (options.threads > options.connections) options.threads = options.connections;
  const double in_flight_bytes = static_cast<double>(options.connections) * options.pipeline *
                                 (options.command == Command::echo ? options.size + 64.0 : 64.0);
  if (in_flight_bytes > kMaxInFlightBytes) {
    return fail("connections x pipeline x size would keep more than 4 GiB in flight");
  }
  result.options = std::move(options);
  return result;
}

}  // namespace framed::bench
