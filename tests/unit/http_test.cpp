// The HTTP listener's pure parts: the request parser over every split of
// its input, the Prometheus renderer's exact text, HTML escaping.

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "http/request_parser.hpp"
#include "http/status_page.hpp"
#include "server/metrics_text.hpp"

namespace {

using framed::http::Method;
using framed::http::Request;
using framed::http::RequestLimits;
using framed::http::RequestParser;
using Status = RequestParser::Status;

struct Outcome {
  std::vector<Request> requests;
  int error = 0;
};

// Feeds `input` in pieces cut at `cuts` (ascending offsets), as reads would
// bring them, keeping unconsumed bytes as a connection's input buffer does.
Outcome feed(std::string_view input, const std::vector<std::size_t>& cuts, RequestLimits limits = {}) {
  RequestParser parser(limits);
  Outcome outcome;
  std::string buffered;
  std::size_t from = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  for (const std::size_t end : ends) {
    buffered.append(input.substr(from, end - from));
    from = end;
    while (!buffered.empty()) {
      const auto [status, consumed] = parser.parse(buffered);
      buffered.erase(0, consumed);
      if (status == Status::incomplete) break;
      if (status == Status::error) {
        outcome.error = parser.error_status();
        return outcome;
      }
      outcome.requests.push_back(parser.request());
    }
  }
  return outcome;
}

constexpr std::string_view kPipelined =
    "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
    "DELETE /healthz HTTP/1.1\r\n\r\n"
    "GET http://host:80/healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n";

void check_pipelined(const Outcome& outcome) {
  REQUIRE(outcome.error == 0);
  REQUIRE(outcome.requests.size() == 5);
  CHECK(outcome.requests[0].method == Method::get);
  CHECK(outcome.requests[0].path == "/metrics");
  CHECK(outcome.requests[0].keep_alive);
  CHECK(outcome.requests[1].method == Method::head);
  CHECK(outcome.requests[1].path == "/");
  CHECK(outcome.requests[2].method == Method::other);
  CHECK(outcome.requests[2].method_name == "DELETE");
  CHECK(outcome.requests[3].path == "/healthz");
  CHECK(outcome.requests[3].version_minor == 0);
  CHECK(outcome.requests[3].keep_alive);
  CHECK(outcome.requests[4].path == "/last");
  CHECK_FALSE(outcome.requests[4].keep_alive);
  for (const Request& request : outcome.requests) CHECK_FALSE(request.has_body);
}

}  // namespace

TEST_CASE("http requests: whole, and split at every point into two and three pieces", "[http]") {
  check_pipelined(feed(kPipelined, {}));
  for (std::size_t first = 1; first < kPipelined.size(); ++first) {
    check_pipelined(feed(kPipelined, {first}));
  }
  for (std::size_t first = 1; first < kPipelined.size(); first += 7) {
    for (std::size_t second = first + 1; second < kPipelined.size(); ++second) {
      check_pipelined(feed(kPipelined, {first, second}));
    }
  }
  std::vector<std::size_t> every_byte;
  for (std::size_t i = 1; i < kPipelined.size(); ++i) every_byte.push_back(i);
  check_pipelined(feed(kPipelined, every_byte));
}

TEST_CASE("http requests: HTTP/1.0 closes unless asked; a body is announced", "[http]") {
  const Outcome plain = feed("GET / HTTP/1.0\r\n\r\n", {});
  REQUIRE(plain.requests.size() == 1);
  CHECK_FALSE(plain.requests[0].keep_alive);

  const Outcome body = feed("GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", {});
  REQUIRE(body.requests.size() == 1);
  CHECK(body.requests[0].has_body);
  CHECK_FALSE(body.requests[0].keep_alive);

  const Outcome chunked = feed("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", {});
  REQUIRE(chunked.requests.size() == 1);
  CHECK(chunked.requests[0].has_body);
}

TEST_CASE("http requests: the head bound is exact, at any split", "[http]") {
  const std::string head = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a') + "\r\n\r\n";
  for (std::size_t cut = 1; cut < head.size(); ++cut) {
    const Outcome at_bound = feed(head, {cut}, RequestLimits{.max_head_bytes = head.size()});
    CHECK(at_bound.error == 0);
    CHECK(at_bound.requests.size() == 1);
    const Outcome past = feed(head, {cut}, RequestLimits{.max_head_bytes = head.size() - 1});
    CHECK(past.error == 431);
    CHECK(past.requests.empty());
  }
}

TEST_CASE("http requests: too many headers, malformed lines, other versions", "[http]") {
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  CHECK(feed(many, {}, RequestLimits{.max_head_bytes = 65536, .max_headers = 5}).error == 0);
  CHECK(feed(many, {}, RequestLimits{.max_head_bytes = 65536, .max_headers = 4}).error == 431);

  CHECK(feed("GET / HTTP/1.1\r\nno colon\r\n\r\n", {}).error == 400);
  CHECK(feed(std::string_view("\x00\x01\x02\r\n\r\n", 7), {}).error == 400);
  CHECK(feed("GET / HTTP/2.0\r\n\r\n", {}).error == 505);
}

TEST_CASE("http requests: an unfinished head is reported as in progress", "[http]") {
  RequestParser parser(RequestLimits{});
  CHECK_FALSE(parser.in_head());
  CHECK(parser.parse("GET / HT").status == Status::incomplete);
  CHECK(parser.in_head());
  CHECK(parser.parse("TP/1.1\r\n\r\n").status == Status::request);
  CHECK_FALSE(parser.in_head());
}

TEST_CASE("html escaping of config names", "[http]") {
  std::string out;
  framed::http::append_html_escaped(out, "<a href=\"x\">&'</a>");
  CHECK(out == "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
}

TEST_CASE("metrics: the bridge's families only with a bridge, right after the partial uploads", "[http][metrics]") {
  framed::server::StatsSnapshot snapshot;
  std::string without;
  framed::server::render_metrics(snapshot, "9.9.9", without);
  CHECK(without.find("framed_bridge_") == std::string::npos);

  snapshot.bridge = framed::pubsub::BridgeStats{true, 5, 7, 2, 1};
  std::string with;
  framed::server::render_metrics(snapshot, "9.9.9", with);
  const std::string families =
      "framed_partial_uploads 0\n"
      "# HELP framed_bridge_messages_published_total Local publishes the pub/sub bridge handed to Redis (answered).\n"
      "# TYPE framed_bridge_messages_published_total counter\n"
      "framed_bridge_messages_published_total 5\n"
      "# HELP framed_bridge_messages_received_total Other hosts' messages the pub/sub bridge delivered here.\n"
      "# TYPE framed_bridge_messages_received_total counter\n"
      "framed_bridge_messages_received_total 7\n"
      "# HELP framed_bridge_messages_dropped_total Local publishes that never reached Redis (queue full, connection "
      "lost).\n"
      "# TYPE framed_bridge_messages_dropped_total counter\n"
      "framed_bridge_messages_dropped_total 2\n"
      "# HELP framed_bridge_reconnects_total Times the pub/sub bridge came back after losing Redis.\n"
      "# TYPE framed_bridge_reconnects_total counter\n"
      "framed_bridge_reconnects_total 1\n"
      "# HELP framed_bridge_connected 1 while the pub/sub bridge is connected to Redis.\n"
      "# TYPE framed_bridge_connected gauge\n"
      "framed_bridge_connected 1\n"
      "# HELP framed_exec_runs_total";
  CHECK_THAT(with, Catch::Contains(families));
  // Everything else is as without a bridge.
  const std::size_t start = with.find("# HELP framed_bridge_messages_published_total");
  const std::size_t end = with.find("# HELP framed_exec_runs_total");
  REQUIRE(start != std::string::npos);
  CHECK(with.substr(0, start) + with.substr(end) == without);
}

TEST_CASE("metrics: the exact exposition of a small snapshot", "[http][metrics]") {
  framed::server::StatsSnapshot snapshot;
  snapshot.backend = "epoll";
  snapshot.uptime = std::chrono::seconds(42);
  snapshot.process.rss_bytes = 8192;
  snapshot.process.cpu_user_seconds = 1.25;
  snapshot.process.cpu_system_seconds = 0.5;
  snapshot.reload_failures = 1;
  snapshot.config_generation = 3;
  snapshot.config_loaded_unix = 1764633600;
  snapshot.counters_since_unix = 1764633000;
  snapshot.bytes_buffered = 640;
  snapshot.workers = 2;
  snapshot.workers_busy = 1;
  snapshot.jobs_queued = 3;
  snapshot.exec_orphans_killed = 2;
  snapshot.shard.accept_fd_exhausted = 4;
  snapshot.shard.connections_shed_for_memory = 3;
  snapshot.shard.allocation_failures = 5;
  snapshot.buffer_memory = 65536;
  snapshot.max_buffered_total = 1 << 30;
  snapshot.shard.body_timeouts = 2;
  snapshot.files = framed::commands::FileStats{.bytes_in = 10, .bytes_out = 20, .files_committed = 3,
                                               .uploads_aborted = 1};
  snapshot.partials = framed::commands::PartialCounters{.kept = 4, .resumed = 2, .expired = 1, .evicted = 0,
                                                        .discarded = 1, .held = 0};
  framed::server::TrafficStats traffic;
  traffic.connections_accepted = 5;
  traffic.connections_active = 1;
  traffic.frames_in = 7;
  traffic.replies_out = 7;
  traffic.bytes_in = 100;
  traffic.bytes_out = 200;
  traffic.count_error(framed::proto::ErrorCode::unknown_command);
  snapshot.listeners.push_back({"a\"b\\c\nd", "tcp", traffic});
  snapshot.reactors.push_back({0, traffic});
  traffic.connections_active = 0;
  traffic.frames_in = 2;
  snapshot.reactors.push_back({1, traffic});
  framed::commands::CommandStats ping;
  ping.calls = 6;
  ping.latency.record(std::chrono::microseconds(5), 4);  // a batch of four
  ping.latency.record(std::chrono::milliseconds(30), 2);
  snapshot.commands.emplace_back("ping", std::move(ping));
  // Cumulative: the four 5 µs replies from the first bound on, all six from
  // 0.05 s (30 ms lies above 0.025).
  std::string ping_buckets;
  for (const auto& [bound, count] : std::initializer_list<std::pair<const char*, const char*>>{
           {"0.00001", "4"}, {"0.000025", "4"}, {"0.00005", "4"}, {"0.0001", "4"}, {"0.00025", "4"},
           {"0.0005", "4"}, {"0.001", "4"}, {"0.0025", "4"}, {"0.005", "4"}, {"0.01", "4"}, {"0.025", "4"},
           {"0.05", "6"}, {"0.1", "6"}, {"0.25", "6"}, {"0.5", "6"}, {"1", "6"}, {"2.5", "6"}, {"5", "6"},
           {"10", "6"}, {"30", "6"}, {"+Inf", "6"}}) {
    ping_buckets += "framed_command_duration_seconds_bucket{command=\"ping\",le=\"";
    ping_buckets += bound;
    ping_buckets += "\"} ";
    ping_buckets += count;
    ping_buckets += "\n";
  }
  framed::commands::ExecStats exec;
  exec.runs = 2;
  exec.latency.record(std::chrono::milliseconds(1));
  exec.latency.record(std::chrono::milliseconds(1));
  snapshot.exec.emplace_back("date", std::move(exec));

  std::string text;
  framed::server::render_metrics(snapshot, "9.9.9", text);
  const std::string_view listener = R"(listener="a\"b\\c\nd",kind="tcp")";
  std::string errors;
  for (const char* code : {"bad_frame", "frame_too_large", "bad_request", "unknown_command", "forbidden",
                           "not_found", "timeout", "too_busy", "no_space", "internal"}) {
    errors += "framed_errors_total{" + std::string(listener) + ",code=\"" + code + "\"} " +
              (std::string_view(code) == "unknown_command" ? "1" : "0") + "\n";
  }
  const std::string l(listener);
  const std::string expected =
      "# HELP framed_build_info The daemon's version and I/O backend; always 1.\n"
      "# TYPE framed_build_info gauge\n"
      "framed_build_info{version=\"9.9.9\",backend=\"epoll\"} 1\n"
      "# HELP framed_uptime_seconds Seconds since the daemon started.\n"
      "# TYPE framed_uptime_seconds gauge\n"
      "framed_uptime_seconds 42\n"
      "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
      "# TYPE process_resident_memory_bytes gauge\n"
      "process_resident_memory_bytes 8192\n"
      "# HELP process_cpu_seconds_total User and system CPU time spent in seconds.\n"
      "# TYPE process_cpu_seconds_total counter\n"
      "process_cpu_seconds_total 1.75\n"
      "# HELP framed_connections_accepted_total Connections accepted.\n"
      "# TYPE framed_connections_accepted_total counter\n"
      "framed_connections_accepted_total{" + l + "} 5\n"
      "# HELP framed_connections_active Connections open now.\n"
      "# TYPE framed_connections_active gauge\n"
      "framed_connections_active{" + l + "} 1\n"
      "# HELP framed_connections_rejected_total Connections refused because max_connections was reached.\n"
      "# TYPE framed_connections_rejected_total counter\n"
      "framed_connections_rejected_total{" + l + "} 0\n"
      "# HELP framed_connections_rejected_per_ip_total Connections refused because their source address had "
      "max_connections_per_ip open.\n"
      "# TYPE framed_connections_rejected_per_ip_total counter\n"
      "framed_connections_rejected_per_ip_total{" + l + "} 0\n"
      "# HELP framed_auth_successes_total auth requests with a right token.\n"
      "# TYPE framed_auth_successes_total counter\n"
      "framed_auth_successes_total{" + l + "} 0\n"
      "# HELP framed_auth_failures_total auth requests with a wrong token.\n"
      "# TYPE framed_auth_failures_total counter\n"
      "framed_auth_failures_total{" + l + "} 0\n"
      "# HELP framed_rate_limited_total Requests answered too_busy past their principal's rate.\n"
      "# TYPE framed_rate_limited_total counter\n"
      "framed_rate_limited_total{" + l + "} 0\n"
      "# HELP framed_frames_in_total Requests decoded (HTTP listeners: HTTP requests).\n"
      "# TYPE framed_frames_in_total counter\n"
      "framed_frames_in_total{" + l + "} 7\n"
      "# HELP framed_replies_out_total Replies written.\n"
      "# TYPE framed_replies_out_total counter\n"
      "framed_replies_out_total{" + l + "} 7\n"
      "# HELP framed_bytes_in_total Bytes received.\n"
      "# TYPE framed_bytes_in_total counter\n"
      "framed_bytes_in_total{" + l + "} 100\n"
      "# HELP framed_bytes_out_total Bytes sent.\n"
      "# TYPE framed_bytes_out_total counter\n"
      "framed_bytes_out_total{" + l + "} 200\n"
      "# HELP framed_datagrams_in_total Datagrams received.\n"
      "# TYPE framed_datagrams_in_total counter\n"
      "framed_datagrams_in_total{" + l + "} 0\n"
      "# HELP framed_datagrams_out_total Datagrams sent.\n"
      "# TYPE framed_datagrams_out_total counter\n"
      "framed_datagrams_out_total{" + l + "} 0\n"
      "# HELP framed_tls_handshakes_total TLS handshakes completed.\n"
      "# TYPE framed_tls_handshakes_total counter\n"
      "framed_tls_handshakes_total{" + l + "} 0\n"
      "# HELP framed_tls_handshake_failures_total TLS connections closed before their handshake completed.\n"
      "# TYPE framed_tls_handshake_failures_total counter\n"
      "framed_tls_handshake_failures_total{" + l + "} 0\n"
      "# HELP framed_reactor_connections_active Connections open now, by reactor.\n"
      "# TYPE framed_reactor_connections_active gauge\n"
      "framed_reactor_connections_active{reactor=\"0\"} 1\n"
      "framed_reactor_connections_active{reactor=\"1\"} 0\n"
      "# HELP framed_reactor_frames_in_total Requests decoded, by reactor.\n"
      "# TYPE framed_reactor_frames_in_total counter\n"
      "framed_reactor_frames_in_total{reactor=\"0\"} 7\n"
      "framed_reactor_frames_in_total{reactor=\"1\"} 2\n"
      "# HELP framed_errors_total Error replies, by listener and error code.\n"
      "# TYPE framed_errors_total counter\n" + errors +
      "# HELP framed_idle_timeouts_total Connections closed for idle_timeout.\n"
      "# TYPE framed_idle_timeouts_total counter\n"
      "framed_idle_timeouts_total 0\n"
      "# HELP framed_header_timeouts_total Requests whose header missed header_timeout.\n"
      "# TYPE framed_header_timeouts_total counter\n"
      "framed_header_timeouts_total 0\n"
      "# HELP framed_body_timeouts_total Requests whose body missed body_timeout and min_body_rate.\n"
      "# TYPE framed_body_timeouts_total counter\n"
      "framed_body_timeouts_total 2\n"
      "# HELP framed_accept_errors_total accept() failures other than descriptor exhaustion.\n"
      "# TYPE framed_accept_errors_total counter\n"
      "framed_accept_errors_total 0\n"
      "# HELP framed_accept_fd_exhausted_total Times accepting paused because descriptors or kernel memory ran "
      "out (EMFILE and friends).\n"
      "# TYPE framed_accept_fd_exhausted_total counter\n"
      "framed_accept_fd_exhausted_total 4\n"
      "# HELP framed_connections_shed_for_memory_total Connections closed to give memory back once "
      "limits.max_buffered_total was reached.\n"
      "# TYPE framed_connections_shed_for_memory_total counter\n"
      "framed_connections_shed_for_memory_total 3\n"
      "# HELP framed_allocation_failures_total Allocations that failed; each cost one connection or one piece of "
      "work, not the process.\n"
      "# TYPE framed_allocation_failures_total counter\n"
      "framed_allocation_failures_total 5\n"
      "# HELP framed_reload_failures_total Configuration reloads rejected.\n"
      "# TYPE framed_reload_failures_total counter\n"
      "framed_reload_failures_total 1\n"
      "# HELP framed_bytes_buffered Request and reply bytes held in memory now (received and not consumed, "
      "unsent, waiting).\n"
      "# TYPE framed_bytes_buffered gauge\n"
      "framed_bytes_buffered 640\n"
      "# HELP framed_buffer_memory_bytes Memory the connections' buffers take now.\n"
      "# TYPE framed_buffer_memory_bytes gauge\n"
      "framed_buffer_memory_bytes 65536\n"
      "# HELP framed_buffer_memory_limit_bytes limits.max_buffered_total.\n"
      "# TYPE framed_buffer_memory_limit_bytes gauge\n"
      "framed_buffer_memory_limit_bytes 1073741824\n"
      "# HELP framed_counters_reset_timestamp_seconds When counting began: the start, or the last stats reset "
      "(Unix time).\n"
      "# TYPE framed_counters_reset_timestamp_seconds gauge\n"
      "framed_counters_reset_timestamp_seconds 1764633000\n"
      "# HELP framed_config_generation The running configuration: 1 at start, one more per reload applied.\n"
      "# TYPE framed_config_generation gauge\n"
      "framed_config_generation 3\n"
      "# HELP framed_config_loaded_timestamp_seconds When the running configuration was loaded (Unix time).\n"
      "# TYPE framed_config_loaded_timestamp_seconds gauge\n"
      "framed_config_loaded_timestamp_seconds 1764633600\n"
      "# HELP framed_workers Worker-pool threads.\n"
      "# TYPE framed_workers gauge\n"
      "framed_workers 2\n"
      "# HELP framed_workers_busy Worker-pool threads running a job now.\n"
      "# TYPE framed_workers_busy gauge\n"
      "framed_workers_busy 1\n"
      "# HELP framed_worker_queue_depth Worker-pool jobs waiting for a thread.\n"
      "# TYPE framed_worker_queue_depth gauge\n"
      "framed_worker_queue_depth 3\n"
      "# HELP framed_exec_orphans_killed_total Processes a command left running after its run ended (setsid, double "
      "fork), killed.\n"
      "# TYPE framed_exec_orphans_killed_total counter\n"
      "framed_exec_orphans_killed_total 2\n"
      "# HELP framed_command_calls_total Requests run, by command.\n"
      "# TYPE framed_command_calls_total counter\n"
      "framed_command_calls_total{command=\"ping\"} 6\n"
      "# HELP framed_command_failures_total Requests answered ok = false, by command.\n"
      "# TYPE framed_command_failures_total counter\n"
      "framed_command_failures_total{command=\"ping\"} 0\n"
      "# HELP framed_command_duration_seconds Time from the daemon taking a request up to its reply being ready, "
      "by command.\n"
      "# TYPE framed_command_duration_seconds histogram\n" +
      ping_buckets +
      "framed_command_duration_seconds_sum{command=\"ping\"} 0.06002\n"
      "framed_command_duration_seconds_count{command=\"ping\"} 6\n"
      "# HELP framed_file_bytes_in_total put body bytes taken for the disk.\n"
      "# TYPE framed_file_bytes_in_total counter\n"
      "framed_file_bytes_in_total 10\n"
      "# HELP framed_file_bytes_out_total get body bytes handed to the socket.\n"
      "# TYPE framed_file_bytes_out_total counter\n"
      "framed_file_bytes_out_total 20\n"
      "# HELP framed_files_committed_total Uploads that became visible under their name.\n"
      "# TYPE framed_files_committed_total counter\n"
      "framed_files_committed_total 3\n"
      "# HELP framed_uploads_aborted_total Uploads cut off or failed before a commit.\n"
      "# TYPE framed_uploads_aborted_total counter\n"
      "framed_uploads_aborted_total 1\n"
      "# HELP framed_partial_uploads_total Failed uploads kept for resuming, and what became of them.\n"
      "# TYPE framed_partial_uploads_total counter\n"
      "framed_partial_uploads_total{event=\"kept\"} 4\n"
      "framed_partial_uploads_total{event=\"resumed\"} 2\n"
      "framed_partial_uploads_total{event=\"expired\"} 1\n"
      "framed_partial_uploads_total{event=\"evicted\"} 0\n"
      "framed_partial_uploads_total{event=\"discarded\"} 1\n"
      "# HELP framed_partial_uploads Failed uploads kept for resuming now.\n"
      "# TYPE framed_partial_uploads gauge\n"
      "framed_partial_uploads 0\n"
      "# HELP framed_exec_runs_total exec runs that ended, by configured command.\n"
      "# TYPE framed_exec_runs_total counter\n"
      "framed_exec_runs_total{command=\"date\"} 2\n"
      "# HELP framed_exec_failures_total exec runs that did not exit with status 0.\n"
      "# TYPE framed_exec_failures_total counter\n"
      "framed_exec_failures_total{command=\"date\"} 0\n"
      "# HELP framed_exec_timeouts_total exec runs stopped by their timeout.\n"
      "# TYPE framed_exec_timeouts_total counter\n"
      "framed_exec_timeouts_total{command=\"date\"} 0\n"
      "# HELP framed_exec_truncated_total exec runs whose output was cut.\n"
      "# TYPE framed_exec_truncated_total counter\n"
      "framed_exec_truncated_total{command=\"date\"} 0\n"
      "# HELP framed_exec_refused_total exec requests refused as forbidden.\n"
      "# TYPE framed_exec_refused_total counter\n"
      "framed_exec_refused_total{command=\"date\"} 0\n"
      "# HELP framed_exec_too_busy_total exec requests refused as too_busy.\n"
      "# TYPE framed_exec_too_busy_total counter\n"
      "framed_exec_too_busy_total{command=\"date\"} 0\n"
      "# HELP framed_exec_active exec runs queued or running now.\n"
      "# TYPE framed_exec_active gauge\n"
      "framed_exec_active{command=\"date\"} 0\n"
      "# HELP framed_exec_latency_seconds exec latency from request to result, queueing included, by "
      "configured command.\n"
      "# TYPE framed_exec_latency_seconds summary\n"
      "framed_exec_latency_seconds{command=\"date\",quantile=\"0.5\"} 0.001\n"
      "framed_exec_latency_seconds{command=\"date\",quantile=\"0.9\"} 0.001\n"
      "framed_exec_latency_seconds{command=\"date\",quantile=\"0.99\"} 0.001\n"
      "framed_exec_latency_seconds_sum{command=\"date\"} 0.002\n"
      "framed_exec_latency_seconds_count{command=\"date\"} 2\n";
  CHECK(text == expected);
}
