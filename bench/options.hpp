#pragma once
// The command line of framed-bench. parse_options() validates every field
// against the limits in options.cpp, so the client never re-checks one.

#include <cstdint>
#include <string>
#include <string_view>

#include "command_line.hpp"

namespace framed::bench {

enum class Command { ping, echo };
// load: each connection stays open and keeps --pipeline requests in flight.
// handshake: each connection repeatedly connects (and completes the TLS
// handshake with --tls), sends one request, reads its reply and closes.
enum class Mode { load, handshake };

// Client TLS (--tls): one SSL_CTX per run, shared read-only by the threads.
struct TlsOptions {
  bool enabled = false;
  std::string ca_file;       // --tls-ca; empty: the system's trust store
  bool insecure = false;     // --tls-insecure: no verification at all
  std::string server_name;   // --server-name; empty: --host
};

struct Options : ServerOptions {
  unsigned connections = 1;
  unsigned pipeline = 1;  // requests in flight per connection
  double duration_s = 5.0;
  double warmup_s = 1.0;
  unsigned threads = 1;  // never more than connections (clamped)
  Command command = Command::ping;
  std::uint32_t size = 1024;  // echo body bytes
  Mode mode = Mode::load;
  // --requests: a fixed amount of work instead of a window (instruction
  // counts per request under callgrind): this many requests in all, spread
  // evenly over the connections, every reply counted (no warmup); the run
  // ends with the last reply, --duration is then only a time limit.
  std::uint64_t requests = 0;  // 0: run for --duration
  TlsOptions tls;
};

// Fills `options`; they are valid when the result has neither help nor error.
CommandLine parse_options(int argc, char** argv, Options& options);
std::string usage();

std::string_view to_string(Command command);
std::string_view to_string(Mode mode);

}  // namespace framed::bench
