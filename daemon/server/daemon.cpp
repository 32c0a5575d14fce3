#include "server/daemon.hpp"

#include <spdlog/spdlog.h>

#include "commands/exec.hpp"
#include "commands/file_commands.hpp"

namespace framed::server {

Daemon::Daemon(const config::Config& config)
    : config_(config), started_at_(base::Clock::now()), worker_pool_(config.daemon.max_queued_jobs) {
  commands::register_basic_commands(commands_);
  commands::register_introspection_commands(commands_);
  commands::register_exec_command(commands_);
  commands::register_pubsub_commands(commands_);
  commands::register_file_commands(commands_);
  const unsigned workers = config.daemon.workers != 0 ? config.daemon.workers : exec::available_cpus();
  if (const std::error_code error = worker_pool_.resize(workers)) {
    SPDLOG_ERROR("worker pool: could start only {} of {} threads: {}", worker_pool_.threads(), workers,
                 error.message());
  }
  SPDLOG_INFO("worker pool: {} threads, up to {} jobs queued; {} exec command(s) configured",
              worker_pool_.threads(), config.daemon.max_queued_jobs, config.commands.size());
}

Daemon::~Daemon() { stop_workers(); }

void Daemon::stop_workers() noexcept {
  if (const unsigned busy = worker_pool_.busy(); busy != 0) {
    SPDLOG_WARN("stopping: killing {} command(s) still running", busy);
  }
  worker_pool_.shutdown();
}

}  // namespace framed::server
