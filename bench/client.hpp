#pragma once
// The load generator's engine: resolving the target once, and one client
// thread per --threads, each running its own epoll loop over its share of
// the connections (non-blocking sockets). Threads share nothing while they
// run except read-only inputs and the stop time; each fills its own
// ThreadResult, which the main thread reads only after join().

#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "options.hpp"
#include "stats/latency_histogram.hpp"
#include "transport/tls_context.hpp"

namespace framed::bench {

using Clock = std::chrono::steady_clock;
// Nanoseconds: loopback round trips are a few microseconds.
using LatencyHistogram = stats::LatencyHistogram<std::chrono::nanoseconds>;

// Where to connect: resolved once, before any thread starts, so every
// connection goes to this one address and nowhere else.
struct Target {
  sockaddr_storage address{};
  socklen_t length = 0;
  bool tcp = true;          // false: Unix stream socket
  std::string description;  // "127.0.0.1:9000", "[::1]:9000", "/run/x.sock"
};

// Resolves --host/--port (numeric or a name; the first address is used) or
// --unix. Returns nullopt and sets `error` when it cannot.
std::optional<Target> resolve_target(const ServerOptions& options, std::string& error);

// The start-up both tools share: resolve_target(), then raise the soft
// descriptor limit to `fds` (one per connection plus spares) rather than
// fail at connection 1021. On failure prints why, as `program`, and
// returns nullopt: the caller exits with kExitUsage.
std::optional<Target> prepare_target(std::string_view program, const ServerOptions& options, rlim_t fds);

// The run's client TLS context for --tls: TLS 1.2 or 1.3, the server
// verified against --tls-ca or the system store (nothing with
// --tls-insecure). Threads share it read-only: SSL_new() on a context that
// no longer changes is thread-safe. Returns null and sets `error` when a
// file cannot be loaded.
transport::UniqueSslCtx make_client_tls_context(const TlsOptions& options, std::string& error);

// One run's time line, the same for every thread.
struct Timeline {
  Clock::time_point measure_begin;  // end of warmup
  Clock::time_point measure_end;
  Clock::time_point drain_end;  // replies still due are abandoned after this
};

struct ThreadResult {
  LatencyHistogram latency;      // good replies received in the window
  std::uint64_t completed = 0;   // == latency.count()
  std::uint64_t errors = 0;      // any phase: connect, protocol, wrong reply, close
  std::uint64_t connected = 0;   // connections that were established (each counted once)
  std::uint64_t handshakes = 0;  // completed TLS handshakes (plaintext: TCP connects), whole run
  std::uint64_t undrained = 0;   // connections closed with replies still due
  Clock::time_point last_reply;  // --requests: when this thread's last reply came
  std::vector<std::string> error_samples;  // the first few error messages
};

struct ThreadConfig {
  const Options* options = nullptr;
  const Target* target = nullptr;
  std::span<const char> body;           // echo body; outlives the thread
  SSL_CTX* tls = nullptr;               // --tls: the run's context (read-only here); null: plaintext
  Timeline timeline;
  std::vector<unsigned> connection_ids;  // which of the --connections are this thread's
  // Clock ticks (time_since_epoch) at which the user stopped the run early;
  // 0 while running. Written by the main thread only.
  const std::atomic<Clock::rep>* stop_at = nullptr;
};

// Runs until the window ends and the drain finishes (or drain_end passes).
// Never throws: failures land in result.errors.
void run_client_thread(const ThreadConfig& config, ThreadResult& result) noexcept;

}  // namespace framed::bench
