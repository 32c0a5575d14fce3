#pragma once
// What is process-wide: the configuration snapshot, the command registry,
// the worker pool, and when it all started. Shards (one per reactor thread)
// serve clients with it; nothing here belongs to a connection.
//
// Threads: built and destroyed on the main thread. The config snapshot is
// replaced only by a reload (replace_config), on the reactor thread that
// runs the shard, between events; everything else reads it on that thread.
// A job on the worker pool never reads it: it copies what it needs when it
// is submitted. The registry is read-only once built, the worker pool is
// thread-safe, the kept partial uploads are a table under its own mutex
// (kept across reloads: the Daemon is never rebuilt), and reload_failures is
// an atomic.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "auth/principal_table.hpp"
#include "base/clock.hpp"
#include "buffer/memory_budget.hpp"
#include "commands/command.hpp"
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

  [[nodiscard]] const config::Config& config() const noexcept { return *config_; }
  [[nodiscard]] const commands::CommandRegistry& commands() const noexcept { return commands_; }
  // The running config's [principals], indexed; replaced with the config.
  [[nodiscard]] const std::shared_ptr<const auth::PrincipalTable>& principals() const noexcept { return principals_; }
  [[nodiscard]] exec::WorkerPool& worker_pool() noexcept { return worker_pool_; }
  [[nodiscard]] base::TimePoint started_at() const noexcept { return started_at_; }
  // Failed uploads kept for a resuming put, whichever shard they came through.
  [[nodiscard]] commands::PartialUploads& partial_uploads() noexcept { return partial_uploads_; }
  // limits.max_buffered_total: every connection's buffers count in it.
  [[nodiscard]] buffer::MemoryBudget& buffer_budget() noexcept { return buffer_budget_; }
  [[nodiscard]] std::uint64_t reload_failures() const noexcept { return reload_failures_.load(); }
  // 1 for the config the daemon started with, one more per applied reload.
  [[nodiscard]] std::uint64_t config_generation() const noexcept { return config_generation_; }
  // When the running config was loaded (wall clock, for people).
  [[nodiscard]] std::chrono::system_clock::time_point config_loaded_at() const noexcept { return config_loaded_at_; }

  // A reload was accepted: `config` is the snapshot from now on, the worker
  // pool takes its new size and queue bound at once. The old snapshot is
  // released here; nothing may hold a reference into it across events.
  void replace_config(config::Config config);
  void count_reload_failure() noexcept { ++reload_failures_; }
  // `stats` with "reset": the process-wide counters back to zero, and the
  // time counting restarted from (wall clock, for people).
  void reset_counters();
  [[nodiscard]] std::chrono::system_clock::time_point counters_since() const noexcept { return counters_since_; }

  // Before any shard is destroyed: queued jobs are dropped, running
  // commands killed and their workers joined, so no job's result is posted
  // to a shard that is gone.
  void stop_workers() noexcept;

 private:
  void size_worker_pool();

  std::unique_ptr<const config::Config> config_;
  std::shared_ptr<const auth::PrincipalTable> principals_;
  commands::CommandRegistry commands_;
  base::TimePoint started_at_;
  std::uint64_t config_generation_ = 1;
  std::chrono::system_clock::time_point config_loaded_at_;
  std::atomic<std::uint64_t> reload_failures_{0};
  buffer::MemoryBudget buffer_budget_;
  std::chrono::system_clock::time_point counters_since_ = std::chrono::system_clock::now();
  // Before the pool: a job still holding a kept upload ends before it goes.
  commands::PartialUploads partial_uploads_;
  exec::WorkerPool worker_pool_;
};

}  // namespace framed::server
