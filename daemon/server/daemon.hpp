#pragma once
// What is process-wide: the configuration snapshot, the command registry,
// the worker pool, and when it all started. Shards (one per reactor thread)
// serve clients with it; nothing here belongs to a connection.
//
// Threads: built and destroyed on the main thread. The config snapshot is
// immutable and shared: a reload makes a new one (replace_config, on the
// main reactor's thread) and hands it to every shard, each of which keeps
// its own reference and reads only that one. A job on the worker pool never
// reads it: it copies what it needs when it is submitted. The registry is
// read-only once built; the worker pool, the kept partial uploads, the rate
// buckets and the run counts are thread-safe; the counters read by every
// shard (generation, times, open connections, reload failures) are atomics.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "auth/principal_table.hpp"
#include "auth/rate_buckets.hpp"
#include "base/clock.hpp"
#include "buffer/memory_budget.hpp"
#include "commands/command.hpp"
#include "commands/concurrent_runs.hpp"
#include "commands/partial_uploads.hpp"
#include "config/config.hpp"
#include "exec/worker_pool.hpp"

namespace framed::server {

class Daemon {
 public:
  explicit Daemon(config::Config config);
  // Stops the workers if stop_workers() was not called.
  ~Daemon();

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // The running config; on the main reactor's thread only (a shard reads
  // its own snapshot).
  [[nodiscard]] const config::Config& config() const noexcept { return *config_; }
  [[nodiscard]] const std::shared_ptr<const config::Config>& config_snapshot() const noexcept { return config_; }
  [[nodiscard]] const commands::CommandRegistry& commands() const noexcept { return commands_; }
  // The running config's [principals], indexed; replaced with the config.
  [[nodiscard]] const std::shared_ptr<const auth::PrincipalTable>& principals() const noexcept { return principals_; }
  // Each principal's request rate, and each command's runs, for the whole
  // daemon whichever reactor a request came through.
  [[nodiscard]] auth::RateBuckets& rate_buckets() noexcept { return rate_buckets_; }
  [[nodiscard]] commands::ConcurrentRuns& concurrent_runs() noexcept { return concurrent_runs_; }
  // Stream and http connections open now, on every reactor (max_connections).
  [[nodiscard]] std::uint64_t connections_open() const noexcept { return connections_open_.load(std::memory_order_relaxed); }
  // One more, unless `limit` are open already.
  bool try_open_connection(std::uint64_t limit) noexcept {
    if (connections_open_.fetch_add(1, std::memory_order_relaxed) < limit) return true;
    connections_open_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void connection_closed() noexcept { connections_open_.fetch_sub(1, std::memory_order_relaxed); }
  [[nodiscard]] exec::WorkerPool& worker_pool() noexcept { return worker_pool_; }
  [[nodiscard]] base::TimePoint started_at() const noexcept { return started_at_; }
  // Failed uploads kept for a resuming put, whichever shard they came through.
  [[nodiscard]] commands::PartialUploads& partial_uploads() noexcept { return partial_uploads_; }
  // limits.max_buffered_total: every connection's buffers count in it.
  [[nodiscard]] buffer::MemoryBudget& buffer_budget() noexcept { return buffer_budget_; }
  [[nodiscard]] std::uint64_t reload_failures() const noexcept { return reload_failures_.load(); }
  // 1 for the config the daemon started with, one more per applied reload.
  [[nodiscard]] std::uint64_t config_generation() const noexcept { return config_generation_.load(); }
  // When the running config was loaded (wall clock, for people).
  [[nodiscard]] std::chrono::system_clock::time_point config_loaded_at() const noexcept {
    return std::chrono::system_clock::time_point(std::chrono::system_clock::duration(config_loaded_at_.load()));
  }

  // A reload was accepted: `config` is the snapshot from now on, the worker
  // pool takes its new size and queue bound at once. The old snapshot is
  // released here; nothing may hold a reference into it across events.
  void replace_config(config::Config config);
  void count_reload_failure() noexcept { ++reload_failures_; }
  // `stats` with "reset": the process-wide counters back to zero, and the
  // time counting restarted from (wall clock, for people).
  void reset_counters();
  [[nodiscard]] std::chrono::system_clock::time_point counters_since() const noexcept {
    return std::chrono::system_clock::time_point(std::chrono::system_clock::duration(counters_since_.load()));
  }

  // Before any shard is destroyed: queued jobs are dropped, running
  // commands killed and their workers joined, so no job's result is posted
  // to a shard that is gone.
  void stop_workers() noexcept;

 private:
  void size_worker_pool();

  // Since the epoch, in system_clock ticks: atomics every shard may read.
  static std::chrono::system_clock::rep wall_clock_now() noexcept {
    return std::chrono::system_clock::now().time_since_epoch().count();
  }

  std::shared_ptr<const config::Config> config_;
  std::shared_ptr<const auth::PrincipalTable> principals_;
  commands::CommandRegistry commands_;
  base::TimePoint started_at_;
  std::atomic<std::uint64_t> config_generation_{1};
  std::atomic<std::chrono::system_clock::rep> config_loaded_at_;
  std::atomic<std::uint64_t> reload_failures_{0};
  std::atomic<std::uint64_t> connections_open_{0};
  buffer::MemoryBudget buffer_budget_;
  std::atomic<std::chrono::system_clock::rep> counters_since_{wall_clock_now()};
  auth::RateBuckets rate_buckets_;
  commands::ConcurrentRuns concurrent_runs_;
  // Before the pool: a job still holding a kept upload ends before it goes.
  commands::PartialUploads partial_uploads_;
  exec::WorkerPool worker_pool_;
};

}  // namespace framed::server
