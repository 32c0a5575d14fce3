#include "server/daemon.hpp"

#include <spdlog/spdlog.h>

#include "commands/exec.hpp"
#include "commands/file_commands.hpp"

namespace framed::server {

Daemon::Daemon(config::Config config)
    : config_(std::make_shared<const config::Config>(std::move(config))),
      started_at_(base::Clock::now()),
      config_loaded_at_(wall_clock_now()),
      buffer_budget_(config_->limits.max_buffered_total),
      worker_pool_(config_->daemon.max_queued_jobs) {
  commands::register_basic_commands(commands_);
  commands::register_introspection_commands(commands_);
  commands::register_exec_command(commands_);
  commands::register_pubsub_commands(commands_);
  commands::register_file_commands(commands_);
  commands::register_auth_commands(commands_);
  principals_ = std::make_shared<const auth::PrincipalTable>(config_->principals, config_generation_.load());
  size_worker_pool();
}

Daemon::~Daemon() { stop_workers(); }

void Daemon::replace_config(config::Config config) {
  config_ = std::make_shared<const config::Config>(std::move(config));
  const std::uint64_t generation = ++config_generation_;
  principals_ = std::make_shared<const auth::PrincipalTable>(config_->principals, generation);
  rate_buckets_.retain(*principals_);
  config_loaded_at_ = wall_clock_now();
  buffer_budget_.set_limit(config_->limits.max_buffered_total);
  worker_pool_.set_max_queued(config_->daemon.max_queued_jobs);
  size_worker_pool();
}

void Daemon::size_worker_pool() {
  const unsigned workers = config_->daemon.workers != 0 ? config_->daemon.workers : exec::available_cpus();
  if (const std::error_code error = worker_pool_.resize(workers)) {
    SPDLOG_ERROR("worker pool: could start only {} of {} threads: {}", worker_pool_.threads(), workers,
                 error.message());
  }
  SPDLOG_INFO("worker pool: {} threads, up to {} jobs queued; {} exec command(s) configured",
              worker_pool_.threads(), config_->daemon.max_queued_jobs, config_->commands.size());
}

void Daemon::stop_workers() noexcept {
  if (const unsigned busy = worker_pool_.busy(); busy != 0) {
    SPDLOG_WARN("stopping: killing {} command(s) still running", busy);
  }
  worker_pool_.shutdown();
}

void Daemon::reset_counters() {
  reload_failures_ = 0;
  partial_uploads_.reset_counters();
  counters_since_ = wall_clock_now();
}

}  // namespace framed::server
