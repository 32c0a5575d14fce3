// framed: the daemon's entry point. Parses the command line, loads and
// validates the config, picks the I/O backend, binds the listeners, tells
// systemd it is ready, and runs the reactor until a signal stops it;
// SIGHUP reloads the config file meanwhile.

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/errno_text.hpp"
#include "config/config.hpp"
#include "config/exposure.hpp"
#include "config_reloader.hpp"
#include "exec/worker_pool.hpp"
#include "framed_build_config.hpp"
#include "logging.hpp"
#include "reactor/backend.hpp"
#include "reactor/reactor.hpp"
#include "service_notifier.hpp"
#include "server/exec_containment.hpp"
#include "server/daemon.hpp"
#include "server/shard.hpp"
#include "server/shard_group.hpp"
#include "server/sibling_reactors.hpp"
#include "signals.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: framed [--config PATH] [--check-config] [--version] [--help]\n"
    "\n"
    "  --config PATH    read the TOML configuration from PATH\n"
    "                   (without it: built-in defaults, loopback listeners only)\n"
    "  --check-config   validate the configuration, print ok, and exit\n"
    "  --version        print the version and exit\n"
    "  --help           print this help and exit\n"
    "\n"
    "Environment: FRAMED_BACKEND=auto|io_uring|epoll overrides daemon.backend.\n"
    "Signals: SIGTERM/SIGINT stop gracefully (a second one exits at once);\n"
    "SIGHUP re-reads the config file (rejected whole if it is not valid).\n";

struct Options {
  std::optional<std::string> config_path;
  bool check_config = false;
};

// Returns the exit status when the command line says to exit right away.
std::optional<int> parse_options(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--version") {
      std::cout << "framed " << FRAMED_VERSION << "\n";
      return 0;
    }
    if (arg == "--check-config") {
      options.check_config = true;
    } else if (arg == "--config" && i + 1 < argc) {
      options.config_path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      options.config_path = std::string(arg.substr(9));
    } else {
      std::cerr << "framed: unknown or incomplete option '" << arg << "'\n" << kUsage;
      return 2;
    }
  }
  return std::nullopt;
}

std::string_view describe_limits(const framed::config::Limits& limits, std::string& out) {
  out = fmt::format(
      "max_header={} max_body={} idle_timeout={:g}s header_timeout={:g}s body_timeout={:g}s min_body_rate={} "
      "max_pending_replies={} max_event_backlog={}",
      limits.max_header, limits.max_body, std::chrono::duration<double>(limits.idle_timeout).count(),
      std::chrono::duration<double>(limits.header_timeout).count(),
      std::chrono::duration<double>(limits.body_timeout).count(), limits.min_body_rate, limits.max_pending_replies,
      limits.max_event_backlog);
  return out;
}

// What a reload does once the file has been read (ConfigReloader): a file
// that fails validation, or whose new listeners cannot be bound, is
// rejected whole and the running config stays.
void apply_reload(framed::config::LoadResult loaded, framed::server::Daemon& daemon, framed::server::Shard& shard) {
  using namespace framed;
  std::vector<std::string> errors;
  if (!loaded.errors.empty()) {
    for (const auto& error : loaded.errors) errors.push_back(error.to_string());
  } else {
    errors = shard.reload(std::move(*loaded.config));
  }
  if (!errors.empty()) {
    daemon.count_reload_failure();
    for (const auto& message : errors) SPDLOG_ERROR("reload rejected: {}", message);
    SPDLOG_ERROR("reload rejected: {} error(s); still running config generation {}", errors.size(),
                 daemon.config_generation());
    return;
  }
  set_log_level(daemon.config().daemon.log_level);
  std::string limits_text;
  SPDLOG_INFO("reload: config generation {} applied from {}; limits: {}", daemon.config_generation(),
              daemon.config().source, describe_limits(daemon.config().limits, limits_text));
  for (const auto& warning : config::exposure_warnings(daemon.config())) SPDLOG_WARN("{}", warning);
}

int run(const framed::config::Config& config) {
  using namespace framed;
  set_log_level(config.daemon.log_level);

  reactor::BackendChoice choice = config.daemon.backend;
  if (const char* forced = std::getenv("FRAMED_BACKEND"); forced != nullptr && *forced != '\0') {
    const auto parsed = reactor::parse_backend_choice(forced);
    if (!parsed) {
      SPDLOG_ERROR("FRAMED_BACKEND='{}' is not one of auto, io_uring, epoll", forced);
      return 1;
    }
    choice = *parsed;
  }
  auto selection = reactor::select_backend(choice);
  if (!selection.backend) {
    SPDLOG_ERROR("no I/O backend: {}", selection.reason);
    return 1;
  }
  const std::string backend_name(selection.backend->name());
  int error = 0;
  auto reactor = reactor::Reactor::create(std::move(selection.backend), &error);
  if (!reactor) {
    SPDLOG_ERROR("cannot create the reactor: {}", base::errno_text(error));
    return 1;
  }

  const unsigned reactors = config.daemon.reactors != 0 ? config.daemon.reactors : exec::available_cpus();
  std::vector<int> pin_cpus;
  if (config.daemon.pin_reactors) {
    const std::vector<int> cpus = server::allowed_cpus();
    for (unsigned index = 0; index < reactors && !cpus.empty(); ++index) pin_cpus.push_back(cpus[index % cpus.size()]);
  }
  std::string limits_text;
  SPDLOG_INFO("framed {} starting: backend {} ({}), {} reactor(s){}, config {}", FRAMED_VERSION, backend_name,
              selection.reason, reactors, pin_cpus.empty() ? "" : " pinned to CPUs",
              config.source.empty() ? "built-in defaults" : config.source);
  SPDLOG_INFO("limits: {}; max_connections={}", describe_limits(config.limits, limits_text),
              config.daemon.max_connections);

  // Before the worker pool can run any command.
  const server::ContainmentSetup containment = server::set_up_exec_containment(config.daemon.exec_containment);
  if (!containment.ok) {
    SPDLOG_ERROR("daemon.exec_containment = \"{}\": {}", config::to_string(config.daemon.exec_containment),
                 containment.detail);
    return 1;
  }
  SPDLOG_INFO("exec containment: {}: {}", containment.mode, containment.detail);
  server::Daemon daemon(config);
  // Several reactors: this thread runs the first, and the others their own
  // (SiblingReactors, once this one's listeners are bound).
  std::unique_ptr<server::ShardGroup> group;
  if (reactors > 1) group = std::make_unique<server::ShardGroup>(reactors);
  server::Shard shard(*reactor, daemon, group.get(), 0);
  if (group) group->attach(0, shard);
  std::optional<server::SiblingReactors> siblings;
  ServiceNotifier notifier(*reactor, [&shard] { return shard.status_text(); });
  ConfigReloader reloader(*reactor, config.source, [&](config::LoadResult loaded) {
    if (shard.shutting_down()) return;  // too late: the drain has begun
    apply_reload(std::move(loaded), daemon, shard);
    notifier.ready();
  });
  int signals_seen = 0;
  SignalWatcher signals(*reactor, [&](int signal) {
    if (signal == SIGHUP) {
      if (signals_seen > 0) return;
      if (config.source.empty()) {
        SPDLOG_WARN("SIGHUP: started without --config, so there is no file to reload");
        return;
      }
      SPDLOG_INFO("SIGHUP received: reloading {}", config.source);
      notifier.reloading();
      if (!reloader.request()) {
        daemon.count_reload_failure();
        SPDLOG_ERROR("reload rejected: cannot start a thread to read {}", config.source);
        notifier.ready();
      }
      return;
    }
    if (++signals_seen > 1) {
      SPDLOG_WARN("second stop signal: exiting at once");
      std::fflush(nullptr);
      ::_exit(1);
    }
    SPDLOG_INFO("{} received: stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    notifier.stopping();
    shard.begin_shutdown();
    if (siblings) siblings->begin_shutdown();
  });
  if (!signals.valid()) {
    SPDLOG_ERROR("cannot create a signalfd: {}", base::errno_text(errno));
    return 1;
  }

  const auto errors = shard.start(server::take_activated_sockets());
  if (!errors.empty()) {
    for (const auto& message : errors) SPDLOG_ERROR("{}", message);
    return 1;
  }
  if (group) {
    siblings.emplace(daemon, *group, choice, pin_cpus);
    const auto sibling_errors = siblings->start(shard);
    if (!sibling_errors.empty()) {
      for (const auto& message : sibling_errors) SPDLOG_ERROR("{}", message);
      return 1;
    }
  }
  if (!pin_cpus.empty() && !server::pin_this_thread(pin_cpus[0])) {
    SPDLOG_WARN("reactor 0: cannot pin it to CPU {}: {}", pin_cpus[0], base::errno_text(errno));
  }
  if (siblings) siblings->release();
  signals.start();
  if (!notifier.ready()) SPDLOG_WARN("could not notify systemd through $NOTIFY_SOCKET");
  if (notifier.watchdog_interval().count() != 0) {
    SPDLOG_INFO("systemd watchdog: {} ms; pinging every {} ms", notifier.watchdog_interval().count() / 1000,
                notifier.period().count() / 1000);
  }
  SPDLOG_INFO("ready");
  reactor->run();
  // No job may post to a shard that is gone, and no operation may outlive
  // the buffers it points into.
  if (siblings) siblings->wait_stopped();
  daemon.stop_workers();
  reactor->shut_down_backend();
  SPDLOG_INFO("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (auto exit_status = parse_options(argc, argv, options)) return *exit_status;

  framed::config::LoadResult loaded;
  if (options.config_path) {
    loaded = framed::config::load_config(*options.config_path);
  } else {
    loaded.config = framed::config::default_config();
  }
  if (!loaded.errors.empty()) {
    for (const auto& error : loaded.errors) std::cerr << error.to_string() << "\n";
    return 1;
  }
  const auto warnings = framed::config::exposure_warnings(*loaded.config);
  if (options.check_config) {
    for (const auto& warning : warnings) std::cerr << "warning: " << warning << "\n";
    std::cout << "ok\n";
    return 0;
  }
  framed::setup_logging();
  for (const auto& warning : warnings) SPDLOG_WARN("{}", warning);
  return run(*loaded.config);
}
