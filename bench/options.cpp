#include "options.hpp"

#include <cstdint>
#include <string>

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
// --requests: a trillion is days of work at loopback rates.
constexpr std::uint64_t kMaxRequests = 1'000'000'000'000ULL;
// Every connection may hold pipeline requests of size bytes in its send
// buffer at once; refuse runs whose buffers alone would exceed this.
constexpr double kMaxInFlightBytes = 4.0 * (1ULL << 30);

}  // namespace

std::string_view to_string(Command command) { return command == Command::ping ? "ping" : "echo"; }
std::string_view to_string(Mode mode) { return mode == Mode::load ? "load" : "handshake"; }

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
         "  --requests N          send N requests in all, count every reply, stop after the last\n"
         "                        (no warmup; --duration becomes a time limit)\n"
         "  --protocol json|resp|echo  framed json framing, Redis RESP, or echo: json requests\n"
         "                        expected back byte for byte (bench/raw-echo-server) (default json)\n"
         "  --byte-order big|little  json header length byte order (default big)\n"
         "  --mode load|handshake connections stay open with --pipeline requests in flight (default load);\n"
         "                        handshake: connect, (TLS handshake,) one request, close, again\n"
         "  --tls                 speak TLS (TLS 1.2 or 1.3) to the server\n"
         "  --tls-ca FILE         verify the server against this CA file (PEM; default: the system store)\n"
         "  --tls-insecure        do not verify the server's certificate (throwaway certificates)\n"
         "  --server-name NAME    name sent in SNI and checked in the certificate (default: --host)\n"
         "  --json                print a one-line JSON result\n"
         "  --help                this text\n"
         "\n"
         "Exit status: 0 ok; 1 errors or no replies; 2 bad command line or setup; 3 hard deadline hit.\n";
}

CommandLine parse_options(int argc, char** argv, Options& options) {
  CommandLine result = walk_command_line(
      argc, argv,
      {"--connections", "--pipeline", "--threads", "--duration", "--warmup", "--size", "--command", "--mode",
       "--tls-ca", "--server-name", "--requests"},
      options,
      [&options](std::string_view name, std::string_view value) -> Verdict {
        if (name == "--tls") {
          options.tls.enabled = true;
          return std::nullopt;
        }
        if (name == "--tls-insecure") {
          options.tls.insecure = true;
          return std::nullopt;
        }
        if (name == "--tls-ca") {
          if (value.empty()) return "a CA file";
          options.tls.ca_file = value;
          return std::nullopt;
        }
        if (name == "--server-name") {
          if (value.empty()) return "a server name";
          options.tls.server_name = value;
          return std::nullopt;
        }
        if (name == "--mode") {
          return parse_choice(value, {{"load", Mode::load}, {"handshake", Mode::handshake}}, options.mode,
                              "load or handshake");
        }
        if (name == "--connections") return parse_count(value, kMaxConnections, options.connections, "a connection count");
        if (name == "--pipeline") return parse_count(value, kMaxPipeline, options.pipeline, "a pipeline depth");
        if (name == "--threads") return parse_count(value, kMaxThreads, options.threads, "a thread count");
        if (name == "--command") {
          return parse_choice(value, {{"ping", Command::ping}, {"echo", Command::echo}}, options.command, "ping or echo");
        }
        if (name == "--requests") {
          if (!parse_integer<std::uint64_t>(value, 1, kMaxRequests, options.requests)) return "a request count (1-10^12)";
          return std::nullopt;
        }
        if (name == "--duration") {
          // Zero would divide the request count by nothing.
          if (!parse_seconds(value, 0.001, kMaxDurationS, options.duration_s)) return "a duration (0.001-86400 s)";
        } else if (name == "--warmup") {
          if (!parse_seconds(value, 0.0, kMaxWarmupS, options.warmup_s)) return "a warmup (0-3600 s)";
        } else if (name == "--size") {
          if (!parse_integer<std::uint32_t>(value, 0, kMaxSize, options.size)) {
            return std::string("a size (0-").append(std::to_string(kMaxSize)).append(" bytes)");
          }
        }
        return std::nullopt;
      },
      {"--tls", "--tls-insecure"});
  if (result.help || !result.error.empty()) return result;

  const bool tls_option_given = options.tls.insecure || !options.tls.ca_file.empty() || !options.tls.server_name.empty();
  if (tls_option_given && !options.tls.enabled) {
    result.error = "--tls-ca, --tls-insecure and --server-name need --tls";
    return result;
  }
  if (options.tls.insecure && !options.tls.ca_file.empty()) {
    result.error = "--tls-ca and --tls-insecure contradict each other";
    return result;
  }
  if (options.tls.enabled && !options.unix_path.empty()) {
    result.error = "--tls is for TCP servers (framed's TLS listeners are tcp only)";
    return result;
  }
  if (options.tls.enabled && options.tls.server_name.empty()) options.tls.server_name = options.host;
  if (options.requests != 0) {
    if (options.mode == Mode::handshake) {
      result.error = "--requests is for --mode load";
      return result;
    }
    if (options.requests < options.connections) {
      result.error = "--requests must give every connection at least one request";
      return result;
    }
    options.warmup_s = 0;  // every request is part of the count
  }
  // A handshake cycle has exactly one request in flight.
  if (options.mode == Mode::handshake) options.pipeline = 1;

  if (options.threads > options.connections) options.threads = options.connections;
  const double in_flight_bytes = static_cast<double>(options.connections) * options.pipeline *
                                 (options.command == Command::echo ? options.size + 64.0 : 64.0);
  if (in_flight_bytes > kMaxInFlightBytes) {
    result.error = "connections x pipeline x size would keep more than 4 GiB in flight";
  }
  return result;
}

}  // namespace framed::bench
