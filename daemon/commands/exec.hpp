#pragma once
// exec's bookkeeping that outlives a request: per configured command, the
// counters `stats` shows and the runs in flight that max_concurrent bounds.
// Each shard owns its table (CommandHost::exec_stats); the exec command
// (exec.cpp) fills it.
//
// Reactor thread only: workers never touch it, their results are posted
// back first.

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "stats/latency_histogram.hpp"

namespace framed::commands {

class CommandRegistry;

struct ExecStats {
  std::uint64_t runs = 0;       // runs that ended: a result came back from the worker
  std::uint64_t failures = 0;   // of those, not "exited with status 0": non-zero exit,
                                // signal, timeout, could not start
  std::uint64_t timeouts = 0;   // of those, stopped by the timeout
  std::uint64_t truncated = 0;  // of those, output cut at max_output
  std::uint64_t refused = 0;    // forbidden before running: listener, peer, args
  std::uint64_t busy = 0;       // too_busy before running: max_concurrent or a full queue
  std::uint32_t active = 0;     // queued or running now
  // From the request being accepted to its result being back on the reactor:
  // queueing included, as a client sees it.
  stats::LatencyHistogram<std::chrono::microseconds> latency;

  ExecStats& operator+=(const ExecStats& other) noexcept {
    runs += other.runs;
    failures += other.failures;
    timeouts += other.timeouts;
    truncated += other.truncated;
    refused += other.refused;
    busy += other.busy;
    active += other.active;
    latency.merge(other.latency);
    return *this;
  }
};

// By command name; std::less<> finds by string_view without a copy.
using ExecStatsTable = std::map<std::string, ExecStats, std::less<>>;

// Registers `exec` (exec.cpp).
void register_exec_command(CommandRegistry& registry);

}  // namespace framed::commands
