// help and stats: what the daemon can do, and what it has done.

#include <chrono>

#include "commands/command.hpp"
#include "framed_build_config.hpp"
#include "proto/json_writer.hpp"
#include "server/listener_settings.hpp"
#include "server/stats.hpp"

namespace framed::commands {
namespace {

void write_traffic(proto::JsonWriter& json, const server::TrafficStats& stats) {
  json.key("connections_accepted").value(stats.connections_accepted);
  json.key("connections_active").value(stats.connections_active);
  json.key("connections_rejected").value(stats.connections_rejected);
  json.key("connections_rejected_per_ip").value(stats.connections_rejected_per_ip);
  json.key("auth_successes").value(stats.auth_successes);
  json.key("auth_failures").value(stats.auth_failures);
  json.key("rate_limited").value(stats.rate_limited);
  json.key("frames_in").value(stats.frames_in);
  json.key("replies_out").value(stats.replies_out);
  json.key("bytes_in").value(stats.bytes_in);
  json.key("bytes_out").value(stats.bytes_out);
  json.key("datagrams_in").value(stats.datagrams_in);
  json.key("datagrams_out").value(stats.datagrams_out);
  json.key("tls_handshakes").value(stats.tls_handshakes);
  json.key("tls_handshake_failures").value(stats.tls_handshake_failures);
  std::uint64_t errors = 0;
  for (std::size_t i = 0; i < proto::kErrorCodeCount; ++i) errors += stats.errors[i];
  json.key("errors").value(errors);
  for (std::size_t i = 0; i < proto::kErrorCodeCount; ++i) {
    const std::string key = "errors_" + std::string(proto::to_string(static_cast<proto::ErrorCode>(i)));
    json.key(key).value(stats.errors[i]);
  }
}

// Percentiles in microseconds (at most 0.8 % above the true value).
void write_latency(proto::JsonWriter& json, const stats::LatencyHistogram<std::chrono::microseconds>& latency) {
  json.key("latency_p50_us").value(static_cast<std::uint64_t>(latency.percentile(0.50).count()));
  json.key("latency_p90_us").value(static_cast<std::uint64_t>(latency.percentile(0.90).count()));
  json.key("latency_p99_us").value(static_cast<std::uint64_t>(latency.percentile(0.99).count()));
  json.key("latency_max_us").value(static_cast<std::uint64_t>(latency.max().count()));
}

bool enabled_on(const server::ListenerSettings& listener, std::string_view command) {
  return !listener.forced_command || *listener.forced_command == command;
}

class Help final : public Command {
 public:
  std::string_view name() const noexcept override { return "help"; }
  std::string_view summary() const noexcept override { return "lists every command and whether this listener runs it"; }
  void run(const proto::Request&, proto::Reply& reply, CommandContext& context) override {
    proto::JsonWriter json(reply.body_storage);
    json.begin_array();
    for (const auto& entry : context.host.commands().all()) {
      const std::string_view name = entry->command->name();
      json.begin_object();
      json.key("name").value(name);
      json.key("summary").value(entry->command->summary());
      json.key("enabled").value(enabled_on(context.listener, name));
      json.end_object();
    }
    json.end_array();
    reply.use_storage_as_body();
  }
};

class Stats final : public Command {
 public:
  std::string_view name() const noexcept override { return "stats"; }
  std::string_view summary() const noexcept override {
    return "counters: connections, frames, bytes, errors, per listener and command (\"reset\": true zeroes them)";
  }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) override {
    // "reset": true answers the counters as they are, then zeroes them, in
    // one step on the reactor thread: nothing counted between is lost.
    bool reset = false;
    if (request.mode == proto::RequestMode::json) {
      if (const auto flag = request.header["reset"];
          flag.error() != simdjson::NO_SUCH_FIELD && flag.get_bool().get(reset) != simdjson::SUCCESS) {
        return reply.fail(proto::ErrorCode::bad_request, "stats: \"reset\" must be true or false");
      }
    } else if (!request.body.empty()) {
      if (request.body != "reset") {
        return reply.fail(proto::ErrorCode::bad_request, "stats: the only argument is \"reset\"");
      }
      reset = true;
    }
    CommandHost& host = context.host;
    const ReplyRoute route = context.route;
    auto stats = host.gather_stats(reset, [&host, route](const server::StatsSnapshot& gathered) {
      proto::Reply later;
      write_stats(gathered, later);
      host.deliver_reply(route, later);
    });
    if (stats) return write_stats(*stats, reply);
    // Several reactors: each counts its own, and answers on its own thread.
    [[maybe_unused]] const ReplyRoute deferred = context.defer();
  }

 private:
  static void write_stats(const server::StatsSnapshot& stats, proto::Reply& reply) {
    proto::JsonWriter json(reply.body_storage);
    json.begin_object();
    json.key("version").value(FRAMED_VERSION);
    json.key("backend").value(stats.backend);
    json.key("uptime_seconds").value(static_cast<std::uint64_t>(stats.uptime.count()));
    json.key("pid").value(stats.process.pid);
    json.key("rss_bytes").value(stats.process.rss_bytes);
    json.key("cpu_user_seconds").value(stats.process.cpu_user_seconds);
    json.key("cpu_system_seconds").value(stats.process.cpu_system_seconds);
    json.key("config_path").value(stats.config_path);
    json.key("config_generation").value(stats.config_generation);
    json.key("config_loaded_unix").value(stats.config_loaded_unix);
    json.key("counters_since_unix").value(stats.counters_since_unix);
    json.key("bytes_buffered").value(stats.bytes_buffered);
    json.key("buffer_memory").value(stats.buffer_memory);
    json.key("max_buffered_total").value(stats.max_buffered_total);
    write_traffic(json, stats.total);
    json.key("idle_timeouts").value(stats.shard.idle_timeouts);
    json.key("header_timeouts").value(stats.shard.header_timeouts);
    json.key("body_timeouts").value(stats.shard.body_timeouts);
    json.key("accept_errors").value(stats.shard.accept_errors);
    json.key("accept_fd_exhausted").value(stats.shard.accept_fd_exhausted);
    json.key("slow_subscribers").value(stats.shard.slow_subscribers);
    json.key("connections_shed_for_memory").value(stats.shard.connections_shed_for_memory);
    json.key("allocation_failures").value(stats.shard.allocation_failures);
    json.key("reload_failures").value(stats.reload_failures);
    json.key("workers").value(stats.workers);
    json.key("workers_busy").value(stats.workers_busy);
    json.key("jobs_queued").value(stats.jobs_queued);
    json.key("exec_containment").value(stats.exec_containment);
    json.key("exec_orphans_killed").value(stats.exec_orphans_killed);

    // Each reactor's share (daemon.reactors): its connections and traffic.
    json.key("reactors").begin_array();
    for (const auto& reactor : stats.reactors) {
      json.begin_object();
      json.key("reactor").value(std::uint64_t{reactor.index});
      json.key("connections_accepted").value(reactor.traffic.connections_accepted);
      json.key("connections_active").value(reactor.traffic.connections_active);
      json.key("frames_in").value(reactor.traffic.frames_in);
      json.key("replies_out").value(reactor.traffic.replies_out);
      json.key("bytes_in").value(reactor.traffic.bytes_in);
      json.key("bytes_out").value(reactor.traffic.bytes_out);
      json.key("datagrams_in").value(reactor.traffic.datagrams_in);
      json.end_object();
    }
    json.end_array();

    json.key("listeners").begin_object();
    for (const auto& listener : stats.listeners) {
      json.key(listener.name).begin_object();
      json.key("kind").value(listener.kind);
      write_traffic(json, listener.traffic);
      json.end_object();
    }
    json.end_object();

    json.key("commands").begin_object();
    for (const auto& [name, counters] : stats.commands) {
      json.key(name).begin_object();
      json.key("calls").value(counters.calls);
      json.key("failures").value(counters.failures);
      write_latency(json, counters.latency);
      json.end_object();
    }
    json.end_object();

    // put, get, list, delete: bytes through the disk, commits, aborted
    // uploads and the partial uploads kept for resuming.
    json.key("files").begin_object();
    json.key("bytes_in").value(stats.files.bytes_in);
    json.key("bytes_out").value(stats.files.bytes_out);
    json.key("files_committed").value(stats.files.files_committed);
    json.key("uploads_aborted").value(stats.files.uploads_aborted);
    json.key("partials_kept").value(stats.partials.kept);
    json.key("partials_resumed").value(stats.partials.resumed);
    json.key("partials_expired").value(stats.partials.expired);
    json.key("partials_evicted").value(stats.partials.evicted);
    json.key("partials_discarded").value(stats.partials.discarded);
    json.key("partials_held").value(stats.partials.held);
    json.end_object();

    // The [pubsub] bridge, when there is one.
    if (stats.bridge) {
      json.key("bridge").begin_object();
      json.key("connected").value(stats.bridge->connected);
      json.key("published").value(stats.bridge->published);
      json.key("received").value(stats.bridge->received);
      json.key("dropped").value(stats.bridge->dropped);
      json.key("reconnects").value(stats.bridge->reconnects);
      json.end_object();
    }

    // Per configured exec command; latencies in microseconds, queueing included.
    json.key("exec").begin_object();
    for (const auto& [name, exec] : stats.exec) {
      json.key(name).begin_object();
      json.key("runs").value(exec.runs);
      json.key("failures").value(exec.failures);
      json.key("timeouts").value(exec.timeouts);
      json.key("truncated").value(exec.truncated);
      json.key("refused").value(exec.refused);
      json.key("too_busy").value(exec.busy);
      json.key("active").value(exec.active);
      write_latency(json, exec.latency);
      json.end_object();
    }
    json.end_object();
    json.end_object();
    reply.use_storage_as_body();
  }
};

}  // namespace

void register_introspection_commands(CommandRegistry& registry) {
  registry.add(std::make_unique<Help>());
  registry.add(std::make_unique<Stats>());
}

}  // namespace framed::commands
