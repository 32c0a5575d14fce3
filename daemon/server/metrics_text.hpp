#pragma once
// A StatsSnapshot in the Prometheus text exposition format, version 0.0.4:
// what GET /metrics answers. The same snapshot is what `stats` renders as
// JSON, so the two never disagree. Counters end in _total; per-listener,
// per-command and per-error-code series carry labels; exec latency is a
// summary (quantiles from the latency histogram, in seconds).

#include <string>
#include <string_view>

#include "server/stats.hpp"

namespace framed::server {

// The Content-Type of what render_metrics writes.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Appends the exposition to `out`; `version` is the build's (build_info).
void render_metrics(const StatsSnapshot& snapshot, std::string_view version, std::string& out);

}  // namespace framed::server
