#include "http/status_page.hpp"

#include <fmt/format.h>

#include <iterator>

#include "proto/error_code.hpp"

namespace framed::http {
namespace {

constexpr std::string_view kStyle = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
header{background:#1d3557;color:#fff;padding:14px 18px}
header h1{margin:0;font-size:1.3em}
header p{margin:4px 0 0;opacity:.85;font-size:.9em}
main{padding:12px 18px;max-width:1100px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);margin:0 0 14px;padding:10px 14px;overflow-x:auto}
h2{font-size:1.05em;margin:4px 0 8px}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{text-align:right;padding:5px 8px;border-bottom:1px solid #e3e7eb;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{color:#52606d;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:14px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:10px 14px;min-width:120px;flex:1}
.card b{display:block;font-size:1.5em}
.card span{color:#52606d;font-size:.85em}
.ok{color:#2a9d8f}.draining{color:#e76f51}
)";

void cell(std::string& out, std::uint64_t value) { fmt::format_to(std::back_inserter(out), "<td>{}</td>", value); }

void name_cell(std::string& out, std::string_view name) {
  out += "<td>";
  append_html_escaped(out, name);
  out += "</td>";
}

void card(std::string& out, std::string_view label, std::uint64_t value) {
  fmt::format_to(std::back_inserter(out), "<div class=\"card\"><b>{}</b><span>{}</span></div>", value, label);
}

std::uint64_t error_total(const server::TrafficStats& traffic) {
  std::uint64_t total = 0;
  for (const std::uint64_t count : traffic.errors) total += count;
  return total;
}

}  // namespace

void append_html_escaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
}

void render_status_page(const server::StatsSnapshot& snapshot, const StatusPageContext& context, std::string& out) {
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<title>framed status</title><style>";
  out += kStyle;
  out += "</style></head><body><header><h1>framed</h1><p>";
  fmt::format_to(std::back_inserter(out),
                 "version {} &middot; backend {} &middot; pid {} &middot; up {} s &middot; RSS {:.1f} MiB &middot; ",
                 context.version, snapshot.backend, snapshot.process.pid, snapshot.uptime.count(),
                 static_cast<double>(snapshot.process.rss_bytes) / (1024.0 * 1024.0));
  out += context.draining ? "<span class=\"draining\">draining</span>" : "<span class=\"ok\">serving</span>";
  out += "</p></header><main><div class=\"cards\">";
  card(out, "live connections", snapshot.total.connections_active);
  card(out, "connections accepted", snapshot.total.connections_accepted);
  card(out, "requests", snapshot.total.frames_in);
  card(out, "errors", error_total(snapshot.total));
  card(out, "workers busy", snapshot.workers_busy);
  card(out, "jobs queued", snapshot.jobs_queued);
  out += "</div>";

  out += "<section><h2>Listeners</h2><table><tr><th>name</th><th>kind</th><th>live</th><th>accepted</th>"
         "<th>rejected</th><th>requests</th><th>replies</th><th>bytes in</th><th>bytes out</th><th>errors</th></tr>";
  for (const server::ListenerSnapshot& listener : snapshot.listeners) {
    out += "<tr>";
    name_cell(out, listener.name);
    name_cell(out, listener.kind);
    const server::TrafficStats& traffic = listener.traffic;
    cell(out, traffic.connections_active);
    cell(out, traffic.connections_accepted);
    cell(out, traffic.connections_rejected);
    cell(out, traffic.frames_in);
    cell(out, traffic.replies_out);
    cell(out, traffic.bytes_in);
    cell(out, traffic.bytes_out);
    cell(out, error_total(traffic));
    out += "</tr>";
  }
  out += "</table></section>";

  out += "<section><h2>Commands</h2><table><tr><th>command</th><th>calls</th><th>failures</th>"
         "<th>p50 &micro;s</th><th>p99 &micro;s</th></tr>";
  for (const auto& [name, counters] : snapshot.commands) {
    out += "<tr>";
    name_cell(out, name);
    cell(out, counters.calls);
    cell(out, counters.failures);
    cell(out, static_cast<std::uint64_t>(counters.latency.percentile(0.50).count()));
    cell(out, static_cast<std::uint64_t>(counters.latency.percentile(0.99).count()));
    out += "</tr>";
  }
  out += "</table></section>";

  if (!snapshot.exec.empty()) {
    out += "<section><h2>exec</h2><table><tr><th>name</th><th>runs</th><th>failures</th><th>timeouts</th>"
           "<th>active</th><th>p50 &micro;s</th><th>p99 &micro;s</th></tr>";
    for (const auto& [name, exec] : snapshot.exec) {
      out += "<tr>";
      name_cell(out, name);
      cell(out, exec.runs);
      cell(out, exec.failures);
      cell(out, exec.timeouts);
      cell(out, exec.active);
      cell(out, static_cast<std::uint64_t>(exec.latency.percentile(0.50).count()));
      cell(out, static_cast<std::uint64_t>(exec.latency.percentile(0.99).count()));
      out += "</tr>";
    }
    out += "</table></section>";
  }

  out += "<section><h2>Errors by code</h2><table><tr><th>code</th><th>replies</th></tr>";
  for (std::size_t i = 0; i < proto::kErrorCodeCount; ++i) {
    out += "<tr>";
    name_cell(out, proto::to_string(static_cast<proto::ErrorCode>(i)));
    cell(out, snapshot.total.errors[i]);
    out += "</tr>";
  }
  out += "</table></section>";
  fmt::format_to(std::back_inserter(out),
                 "<section><h2>Daemon</h2><table><tr><td>workers</td><td>{}</td></tr>"
                 "<tr><td>idle timeouts</td><td>{}</td></tr><tr><td>header timeouts</td><td>{}</td></tr>"
                 "<tr><td>body timeouts</td><td>{}</td></tr>"
                 "<tr><td>accept paused (fd exhausted)</td><td>{}</td></tr>"
                 "<tr><td>reload failures</td><td>{}</td></tr>"
                 "<tr><td>bytes buffered now</td><td>{}</td></tr>"
                 "<tr><td>files committed</td><td>{}</td></tr><tr><td>uploads aborted</td><td>{}</td></tr>"
                 "<tr><td>partial uploads kept now</td><td>{}</td></tr></table></section>",
                 snapshot.workers, snapshot.shard.idle_timeouts, snapshot.shard.header_timeouts,
                 snapshot.shard.body_timeouts, snapshot.shard.accept_fd_exhausted, snapshot.reload_failures,
                 snapshot.bytes_buffered,
                 snapshot.files.files_committed, snapshot.files.uploads_aborted, snapshot.partials.held);
  out += "<p style=\"color:#52606d;font-size:.8em\">Machine-readable: <a href=\"/metrics\">/metrics</a> &middot; "
         "<a href=\"/healthz\">/healthz</a></p></main></body></html>\n";
}

}  // namespace framed::http
