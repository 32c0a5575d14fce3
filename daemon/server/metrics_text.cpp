#include "server/metrics_text.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdint>

#include "proto/error_code.hpp"

namespace framed::server {
namespace {

// Label values may hold any bytes of a config name: the format escapes
// backslash, double quote and newline, and nothing else.
void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

struct Label {
  std::string_view name;
  std::string_view value;
};

class Exposition {
 public:
  explicit Exposition(std::string& out) : out_(out) {}

  // Starts a family: its HELP and TYPE lines.
  Exposition& family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    return *this;
  }

  template <typename Value>
  Exposition& sample(std::string_view name, std::initializer_list<Label> labels, Value value) {
    out_ += name;
    if (labels.size() != 0) {
      out_ += '{';
      bool first = true;
      for (const Label& label : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += label.name;
        out_ += "=\"";
        append_label_value(out_, label.value);
        out_ += '"';
      }
      out_ += '}';
    }
    fmt::format_to(std::back_inserter(out_), " {}\n", value);
    return *this;
  }

 private:
  std::string& out_;
};

double seconds(std::chrono::microseconds value) { return static_cast<double>(value.count()) / 1e6; }

// One family per listener counter, a sample per listener.
template <typename Field>
void per_listener(Exposition& metrics, const StatsSnapshot& snapshot, std::string_view name,
                  std::string_view type, std::string_view help, Field field) {
  metrics.family(name, type, help);
  for (const ListenerSnapshot& listener : snapshot.listeners) {
    metrics.sample(name, {{"listener", listener.name}, {"kind", listener.kind}}, listener.traffic.*field);
  }
}

// One family per reactor counter (daemon.reactors), a sample per reactor.
template <typename Field>
void per_reactor(Exposition& metrics, const StatsSnapshot& snapshot, std::string_view name, std::string_view type,
                 std::string_view help, Field field) {
  metrics.family(name, type, help);
  for (const ReactorSnapshot& reactor : snapshot.reactors) {
    metrics.sample(name, {{"reactor", std::to_string(reactor.index)}}, reactor.traffic.*field);
  }
}

template <typename Field>
void per_exec(Exposition& metrics, const StatsSnapshot& snapshot, std::string_view name, std::string_view type,
              std::string_view help, Field field) {
  metrics.family(name, type, help);
  for (const auto& [command, exec] : snapshot.exec) metrics.sample(name, {{"command", command}}, exec.*field);
}

// The `le` bounds of the command latency histogram: from a reactor
// command's microseconds to an exec's timeout, as label text and in the
// histogram's unit.
struct LatencyBound {
  std::string_view label;
  std::chrono::microseconds bound;
};
constexpr std::array<LatencyBound, 20> kLatencyBounds{{
    {"0.00001", std::chrono::microseconds(10)},      {"0.000025", std::chrono::microseconds(25)},
    {"0.00005", std::chrono::microseconds(50)},      {"0.0001", std::chrono::microseconds(100)},
    {"0.00025", std::chrono::microseconds(250)},     {"0.0005", std::chrono::microseconds(500)},
    {"0.001", std::chrono::microseconds(1'000)},     {"0.0025", std::chrono::microseconds(2'500)},
    {"0.005", std::chrono::microseconds(5'000)},     {"0.01", std::chrono::microseconds(10'000)},
    {"0.025", std::chrono::microseconds(25'000)},    {"0.05", std::chrono::microseconds(50'000)},
    {"0.1", std::chrono::microseconds(100'000)},     {"0.25", std::chrono::microseconds(250'000)},
    {"0.5", std::chrono::microseconds(500'000)},     {"1", std::chrono::microseconds(1'000'000)},
    {"2.5", std::chrono::microseconds(2'500'000)},   {"5", std::chrono::microseconds(5'000'000)},
    {"10", std::chrono::microseconds(10'000'000)},   {"30", std::chrono::microseconds(30'000'000)},
}};

// One Prometheus histogram over every command (the reactor's too): the
// cumulative bucket counts come from each command's latency histogram.
void command_latency_histograms(Exposition& metrics, const StatsSnapshot& snapshot) {
  static constexpr std::string_view kName = "framed_command_duration_seconds";
  metrics.family(kName, "histogram",
                 "Time from the daemon taking a request up to its reply being ready, by command.");
  std::array<std::chrono::microseconds, kLatencyBounds.size()> bounds{};
  for (std::size_t i = 0; i < bounds.size(); ++i) bounds[i] = kLatencyBounds[i].bound;
  std::array<std::uint64_t, kLatencyBounds.size()> counts{};
  for (const auto& [name, counters] : snapshot.commands) {
    counters.latency.cumulative_counts(bounds, counts);
    for (std::size_t i = 0; i < counts.size(); ++i) {
      metrics.sample("framed_command_duration_seconds_bucket", {{"command", name}, {"le", kLatencyBounds[i].label}},
                     counts[i]);
    }
    metrics.sample("framed_command_duration_seconds_bucket", {{"command", name}, {"le", "+Inf"}},
                   counters.latency.count());
    metrics.sample("framed_command_duration_seconds_sum", {{"command", name}},
                   static_cast<double>(counters.latency.sum()) / 1e6);
    metrics.sample("framed_command_duration_seconds_count", {{"command", name}}, counters.latency.count());
  }
}

}  // namespace

void render_metrics(const StatsSnapshot& snapshot, std::string_view version, std::string& out) {
  Exposition metrics(out);
  metrics.family("framed_build_info", "gauge", "The daemon's version and I/O backend; always 1.")
      .sample("framed_build_info", {{"version", version}, {"backend", snapshot.backend}}, 1);
  metrics.family("framed_uptime_seconds", "gauge", "Seconds since the daemon started.")
      .sample("framed_uptime_seconds", {}, snapshot.uptime.count());

  // The names every Prometheus client library's process collector uses.
  metrics.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
      .sample("process_resident_memory_bytes", {}, snapshot.process.rss_bytes);
  metrics.family("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.")
      .sample("process_cpu_seconds_total", {},
              snapshot.process.cpu_user_seconds + snapshot.process.cpu_system_seconds);

  per_listener(metrics, snapshot, "framed_connections_accepted_total", "counter",
               "Connections accepted.", &TrafficStats::connections_accepted);
  per_listener(metrics, snapshot, "framed_connections_active", "gauge", "Connections open now.",
               &TrafficStats::connections_active);
  per_listener(metrics, snapshot, "framed_connections_rejected_total", "counter",
               "Connections refused because max_connections was reached.", &TrafficStats::connections_rejected);
  per_listener(metrics, snapshot, "framed_connections_rejected_per_ip_total", "counter",
               "Connections refused because their source address had max_connections_per_ip open.",
               &TrafficStats::connections_rejected_per_ip);
  per_listener(metrics, snapshot, "framed_auth_successes_total", "counter", "auth requests with a right token.",
               &TrafficStats::auth_successes);
  per_listener(metrics, snapshot, "framed_auth_failures_total", "counter", "auth requests with a wrong token.",
               &TrafficStats::auth_failures);
  per_listener(metrics, snapshot, "framed_rate_limited_total", "counter",
               "Requests answered too_busy past their principal's rate.", &TrafficStats::rate_limited);
  per_listener(metrics, snapshot, "framed_frames_in_total", "counter",
               "Requests decoded (HTTP listeners: HTTP requests).", &TrafficStats::frames_in);
  per_listener(metrics, snapshot, "framed_replies_out_total", "counter", "Replies written.",
               &TrafficStats::replies_out);
  per_listener(metrics, snapshot, "framed_bytes_in_total", "counter", "Bytes received.", &TrafficStats::bytes_in);
  per_listener(metrics, snapshot, "framed_bytes_out_total", "counter", "Bytes sent.", &TrafficStats::bytes_out);
  per_listener(metrics, snapshot, "framed_datagrams_in_total", "counter", "Datagrams received.",
               &TrafficStats::datagrams_in);
  per_listener(metrics, snapshot, "framed_datagrams_out_total", "counter", "Datagrams sent.",
               &TrafficStats::datagrams_out);
  per_listener(metrics, snapshot, "framed_tls_handshakes_total", "counter", "TLS handshakes completed.",
               &TrafficStats::tls_handshakes);
  per_listener(metrics, snapshot, "framed_tls_handshake_failures_total", "counter",
               "TLS connections closed before their handshake completed.", &TrafficStats::tls_handshake_failures);

  // Each reactor's share (daemon.reactors): how evenly the kernel spreads
  // the clients.
  per_reactor(metrics, snapshot, "framed_reactor_connections_active", "gauge", "Connections open now, by reactor.",
              &TrafficStats::connections_active);
  per_reactor(metrics, snapshot, "framed_reactor_frames_in_total", "counter", "Requests decoded, by reactor.",
              &TrafficStats::frames_in);

  metrics.family("framed_errors_total", "counter", "Error replies, by listener and error code.");
  for (const ListenerSnapshot& listener : snapshot.listeners) {
    for (std::size_t i = 0; i < proto::kErrorCodeCount; ++i) {
      metrics.sample("framed_errors_total",
                     {{"listener", listener.name},
                      {"kind", listener.kind},
                      {"code", proto::to_string(static_cast<proto::ErrorCode>(i))}},
                     listener.traffic.errors[i]);
    }
  }

  metrics.family("framed_idle_timeouts_total", "counter", "Connections closed for idle_timeout.")
      .sample("framed_idle_timeouts_total", {}, snapshot.shard.idle_timeouts);
  metrics.family("framed_header_timeouts_total", "counter", "Requests whose header missed header_timeout.")
      .sample("framed_header_timeouts_total", {}, snapshot.shard.header_timeouts);
  metrics.family("framed_body_timeouts_total", "counter", "Requests whose body missed body_timeout and min_body_rate.")
      .sample("framed_body_timeouts_total", {}, snapshot.shard.body_timeouts);
  metrics.family("framed_accept_errors_total", "counter", "accept() failures other than descriptor exhaustion.")
      .sample("framed_accept_errors_total", {}, snapshot.shard.accept_errors);
  metrics
      .family("framed_accept_fd_exhausted_total", "counter",
              "Times accepting paused because descriptors or kernel memory ran out (EMFILE and friends).")
      .sample("framed_accept_fd_exhausted_total", {}, snapshot.shard.accept_fd_exhausted);
  metrics
      .family("framed_connections_shed_for_memory_total", "counter",
              "Connections closed to give memory back once limits.max_buffered_total was reached.")
      .sample("framed_connections_shed_for_memory_total", {}, snapshot.shard.connections_shed_for_memory);
  metrics
      .family("framed_allocation_failures_total", "counter",
              "Allocations that failed; each cost one connection or one piece of work, not the process.")
      .sample("framed_allocation_failures_total", {}, snapshot.shard.allocation_failures);
  metrics.family("framed_reload_failures_total", "counter", "Configuration reloads rejected.")
      .sample("framed_reload_failures_total", {}, snapshot.reload_failures);
  metrics.family("framed_bytes_buffered", "gauge",
                 "Request and reply bytes held in memory now (received and not consumed, unsent, waiting).")
      .sample("framed_bytes_buffered", {}, snapshot.bytes_buffered);
  metrics.family("framed_buffer_memory_bytes", "gauge", "Memory the connections' buffers take now.")
      .sample("framed_buffer_memory_bytes", {}, snapshot.buffer_memory);
  metrics.family("framed_buffer_memory_limit_bytes", "gauge", "limits.max_buffered_total.")
      .sample("framed_buffer_memory_limit_bytes", {}, snapshot.max_buffered_total);
  metrics
      .family("framed_counters_reset_timestamp_seconds", "gauge",
              "When counting began: the start, or the last stats reset (Unix time).")
      .sample("framed_counters_reset_timestamp_seconds", {}, snapshot.counters_since_unix);
  metrics.family("framed_config_generation", "gauge", "The running configuration: 1 at start, one more per reload applied.")
      .sample("framed_config_generation", {}, snapshot.config_generation);
  metrics
      .family("framed_config_loaded_timestamp_seconds", "gauge", "When the running configuration was loaded (Unix time).")
      .sample("framed_config_loaded_timestamp_seconds", {}, snapshot.config_loaded_unix);

  metrics.family("framed_workers", "gauge", "Worker-pool threads.").sample("framed_workers", {}, snapshot.workers);
  metrics.family("framed_workers_busy", "gauge", "Worker-pool threads running a job now.")
      .sample("framed_workers_busy", {}, snapshot.workers_busy);
  metrics.family("framed_worker_queue_depth", "gauge", "Worker-pool jobs waiting for a thread.")
      .sample("framed_worker_queue_depth", {}, snapshot.jobs_queued);
  metrics
      .family("framed_exec_orphans_killed_total", "counter",
              "Processes a command left running after its run ended (setsid, double fork), killed.")
      .sample("framed_exec_orphans_killed_total", {}, snapshot.exec_orphans_killed);

  metrics.family("framed_command_calls_total", "counter", "Requests run, by command.");
  for (const auto& [name, counters] : snapshot.commands) {
    metrics.sample("framed_command_calls_total", {{"command", name}}, counters.calls);
  }
  metrics.family("framed_command_failures_total", "counter", "Requests answered ok = false, by command.");
  for (const auto& [name, counters] : snapshot.commands) {
    metrics.sample("framed_command_failures_total", {{"command", name}}, counters.failures);
  }
  command_latency_histograms(metrics, snapshot);

  metrics.family("framed_file_bytes_in_total", "counter", "put body bytes taken for the disk.")
      .sample("framed_file_bytes_in_total", {}, snapshot.files.bytes_in);
  metrics.family("framed_file_bytes_out_total", "counter", "get body bytes handed to the socket.")
      .sample("framed_file_bytes_out_total", {}, snapshot.files.bytes_out);
  metrics.family("framed_files_committed_total", "counter", "Uploads that became visible under their name.")
      .sample("framed_files_committed_total", {}, snapshot.files.files_committed);
  metrics.family("framed_uploads_aborted_total", "counter", "Uploads cut off or failed before a commit.")
      .sample("framed_uploads_aborted_total", {}, snapshot.files.uploads_aborted);
  metrics.family("framed_partial_uploads_total", "counter", "Failed uploads kept for resuming, and what became of them.")
      .sample("framed_partial_uploads_total", {{"event", "kept"}}, snapshot.partials.kept)
      .sample("framed_partial_uploads_total", {{"event", "resumed"}}, snapshot.partials.resumed)
      .sample("framed_partial_uploads_total", {{"event", "expired"}}, snapshot.partials.expired)
      .sample("framed_partial_uploads_total", {{"event", "evicted"}}, snapshot.partials.evicted)
      .sample("framed_partial_uploads_total", {{"event", "discarded"}}, snapshot.partials.discarded);
  metrics.family("framed_partial_uploads", "gauge", "Failed uploads kept for resuming now.")
      .sample("framed_partial_uploads", {}, snapshot.partials.held);

  // The [pubsub] bridge's families only where there is a bridge: a host
  // without one has nothing to say about Redis.
  if (const auto& bridge = snapshot.bridge) {
    metrics
        .family("framed_bridge_messages_published_total", "counter",
                "Local publishes the pub/sub bridge handed to Redis (answered).")
        .sample("framed_bridge_messages_published_total", {}, bridge->published);
    metrics
        .family("framed_bridge_messages_received_total", "counter",
                "Other hosts' messages the pub/sub bridge delivered here.")
        .sample("framed_bridge_messages_received_total", {}, bridge->received);
    metrics
        .family("framed_bridge_messages_dropped_total", "counter",
                "Local publishes that never reached Redis (queue full, connection lost).")
        .sample("framed_bridge_messages_dropped_total", {}, bridge->dropped);
    metrics
        .family("framed_bridge_reconnects_total", "counter",
                "Times the pub/sub bridge came back after losing Redis.")
        .sample("framed_bridge_reconnects_total", {}, bridge->reconnects);
    metrics.family("framed_bridge_connected", "gauge", "1 while the pub/sub bridge is connected to Redis.")
        .sample("framed_bridge_connected", {}, std::uint64_t{bridge->connected ? 1U : 0U});
  }

  per_exec(metrics, snapshot, "framed_exec_runs_total", "counter", "exec runs that ended, by configured command.",
           &commands::ExecStats::runs);
  per_exec(metrics, snapshot, "framed_exec_failures_total", "counter",
           "exec runs that did not exit with status 0.", &commands::ExecStats::failures);
  per_exec(metrics, snapshot, "framed_exec_timeouts_total", "counter", "exec runs stopped by their timeout.",
           &commands::ExecStats::timeouts);
  per_exec(metrics, snapshot, "framed_exec_truncated_total", "counter", "exec runs whose output was cut.",
           &commands::ExecStats::truncated);
  per_exec(metrics, snapshot, "framed_exec_refused_total", "counter", "exec requests refused as forbidden.",
           &commands::ExecStats::refused);
  per_exec(metrics, snapshot, "framed_exec_too_busy_total", "counter", "exec requests refused as too_busy.",
           &commands::ExecStats::busy);
  per_exec(metrics, snapshot, "framed_exec_active", "gauge", "exec runs queued or running now.",
           &commands::ExecStats::active);

  constexpr std::array<std::pair<double, std::string_view>, 3> kQuantiles{{{0.5, "0.5"}, {0.9, "0.9"}, {0.99, "0.99"}}};
  metrics.family("framed_exec_latency_seconds", "summary",
                 "exec latency from request to result, queueing included, by configured command.");
  for (const auto& [command, exec] : snapshot.exec) {
    for (const auto& [fraction, label] : kQuantiles) {
      metrics.sample("framed_exec_latency_seconds", {{"command", command}, {"quantile", label}},
                     seconds(exec.latency.percentile(fraction)));
    }
    const double sum = exec.latency.mean().count() * static_cast<double>(exec.latency.count()) / 1e6;
    metrics.sample("framed_exec_latency_seconds_sum", {{"command", command}}, sum);
    metrics.sample("framed_exec_latency_seconds_count", {{"command", command}}, exec.latency.count());
  }
}

}  // namespace framed::server
