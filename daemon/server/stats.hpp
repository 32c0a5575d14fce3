#pragma once
// Counters for `stats`. One counter per fact: a listener's traffic is counted
// once, in its own TrafficStats, and the daemon's totals are the sum over
// listeners, taken when a snapshot is rendered. Plain integers: each is
// written on the reactor thread of the shard that owns it; a snapshot is
// taken on that thread too (with several reactors, each shard contributes
// its own and the snapshot adds them up).

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "commands/command.hpp"
#include "commands/exec.hpp"
#include "commands/file_stats.hpp"
#include "commands/partial_uploads.hpp"
#include "proto/error_code.hpp"
#include "pubsub/bridge_stats.hpp"

namespace framed::server {

struct TrafficStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_active = 0;
  std::uint64_t connections_rejected = 0;  // max_connections reached
  std::uint64_t connections_rejected_per_ip = 0;  // max_connections_per_ip reached
  std::uint64_t auth_successes = 0;        // right tokens
  std::uint64_t auth_failures = 0;         // wrong tokens
  std::uint64_t rate_limited = 0;          // requests past their principal's rate (too_busy)
  std::uint64_t frames_in = 0;             // requests decoded
  std::uint64_t replies_out = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t datagrams_in = 0;
  std::uint64_t datagrams_out = 0;
  std::uint64_t tls_handshakes = 0;          // TLS listeners: handshakes completed
  std::uint64_t tls_handshake_failures = 0;  // closed before one completed (refused, broken, timed out)
  std::array<std::uint64_t, proto::kErrorCodeCount> errors{};  // replies by error code

  void count_error(proto::ErrorCode code) noexcept { ++errors[static_cast<std::size_t>(code)]; }
  TrafficStats& operator+=(const TrafficStats& other) noexcept;
};

// What one shard counts that belongs to no listener's traffic.
struct ShardStats {
  std::uint64_t idle_timeouts = 0;
  std::uint64_t header_timeouts = 0;
  std::uint64_t body_timeouts = 0;        // a started body missed body_timeout (and min_body_rate)
  std::uint64_t accept_errors = 0;        // accept failures other than fd exhaustion
  std::uint64_t accept_fd_exhausted = 0;  // EMFILE/ENFILE/ENOBUFS/ENOMEM: accepting paused
  std::uint64_t slow_subscribers = 0;     // dropped past max_event_backlog of unsent events
  // limits.max_buffered_total: connections closed to give their memory back.
  std::uint64_t connections_shed_for_memory = 0;
  // Allocations that failed (std::bad_alloc): each cost a connection or
  // the work at hand, never the process.
  std::uint64_t allocation_failures = 0;

  ShardStats& operator+=(const ShardStats& other) noexcept;
};

// The process as the kernel sees it: what operators look for in Redis INFO
// (process_id, used_memory_rss, used_cpu_user/sys).
struct ProcessStats {
  int pid = 0;
  std::uint64_t rss_bytes = 0;
  double cpu_user_seconds = 0;
  double cpu_system_seconds = 0;
};

// getrusage(2) and /proc/self/statm: kernel memory, no disk, never blocks.
[[nodiscard]] ProcessStats read_process_stats() noexcept;

struct ListenerSnapshot {
  std::string name;
  std::string kind;
  TrafficStats traffic;
};

// One reactor's share of the traffic (the sum of its listeners').
struct ReactorSnapshot {
  unsigned index = 0;
  TrafficStats traffic;
};

// Everything `stats` shows, copied out at one moment; what a later /metrics
// renders too.
struct StatsSnapshot {
  std::string_view backend;
  std::chrono::seconds uptime{};
  ProcessStats process;
  std::string config_path;  // empty: built-in defaults
  TrafficStats total;  // the sum of every listener's
  ShardStats shard;
  std::uint64_t reload_failures = 0;
  std::uint64_t config_generation = 0;    // 1 at start, +1 per applied reload
  std::int64_t config_loaded_unix = 0;    // when the running config was loaded (Unix seconds)
  std::int64_t counters_since_unix = 0;   // start, or the last `stats` reset (Unix seconds)
  // Request and reply bytes held in memory: received and not yet consumed,
  // encoded and not yet sent, replies and events waiting (the connections'
  // share sampled by the shard's 100 ms sweep).
  std::uint64_t bytes_buffered = 0;
  // Memory the connections' buffers take now, exact (what
  // limits.max_buffered_total bounds), and that limit.
  std::uint64_t buffer_memory = 0;
  std::uint64_t max_buffered_total = 0;
  unsigned workers = 0;
  unsigned workers_busy = 0;
  std::uint64_t jobs_queued = 0;
  // How a command's escaped descendants are ended ("subreaper", or
  // "process_group" where the kernel refused), and how many were killed.
  std::string_view exec_containment;
  std::uint64_t exec_orphans_killed = 0;
  std::vector<ListenerSnapshot> listeners;
  std::vector<std::pair<std::string_view, commands::CommandStats>> commands;  // registration order
  std::vector<std::pair<std::string, commands::ExecStats>> exec;              // by name
  commands::FileStats files;               // summed over shards
  commands::PartialCounters partials;      // process-wide: read once, not summed
  std::vector<ReactorSnapshot> reactors;   // by index: one per reactor
  std::optional<pubsub::BridgeStats> bridge;  // set only with a [pubsub] bridge
};

// Adds `other`, one more reactor's snapshot, to `sum`: what each reactor
// counts (traffic per listener, command, exec name, files, its own
// counters, bytes buffered) is added by name; what is the process's (the
// process, the config, the worker pool, memory, partial uploads) is left as
// `sum` has it, read once.
void add_reactor_share(StatsSnapshot& sum, const StatsSnapshot& other);

}  // namespace framed::server
