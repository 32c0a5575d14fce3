#pragma once
// What is process-wide: the configuration snapshot, the command registry,
// the worker pool, and when it all started. Shards (one per reactor thread)
// serve clients with it; nothing here belongs to a connection.
//
// Threads: built and destroyed on the main thread. Read-only while shards
// run — the config snapshot, the registry — except the worker pool, which is
// thread-safe, the kept partial uploads, a table under its own mutex, and
// reload_failures, an atomic.

#include <atomic>
#include <cstdint>

#include "base/clock.hpp"
#include "commands/command.hpp"
#include "commands/partial_uploads.hpp"
#include "config/config.hpp"
#include "exec/worker_pool.hpp"

namespace framed::server {

class Daemon {
 public:
  explicit Daemon(const config::Config& config);
  // Stops the workers if stop_workers() was not called.
  ~Daemon();

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  [[nodiscard]] const config::Config& config() const noexcept { return config_; }
  [[nodiscard]] const commands::CommandRegistry& commands() const noexcept { return commands_; }
  [[nodiscard]] exec::WorkerPool& worker_pool() noexcept { return worker_pool_; }
  [[nodiscard]] base::TimePoint started_at() const noexcept { return started_at_; }
  // Failed uploads kept for a resuming put, whichever shard they came through.
  [[nodiscard]] commands::PartialUploads& partial_uploads() noexcept { return partial_uploads_; }
  [[nodiscard]] std::uint64_t reload_failures() const noexcept { return reload_failures_.load(); }

  // Before any shard is destroyed: queued jobs are dropped, running
  // commands killed and their workers joined, so no job's result is posted
  // to a shard that is gone.
  void stop_workers() noexcept;

 private:
  const config::Config& config_;
  commands::CommandRegistry commands_;
  base::TimePoint started_at_;
  std::atomic<std::uint64_t> reload_failures_{0};
  // Before the pool: a job still holding a kept upload ends before it goes.
  commands::PartialUploads partial_uploads_;
  exec::WorkerPool worker_pool_;
};

}  // namespace framed::server
