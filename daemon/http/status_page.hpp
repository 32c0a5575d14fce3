#pragma once
// The HTML status page (GET /): listeners, connections, commands and their
// counters, from the same StatsSnapshot as `stats` and /metrics. One
// self-contained document: inline CSS, no scripts, no external assets, a
// viewport for phones; every name from the config is HTML-escaped.

#include <string>
#include <string_view>

#include "server/stats.hpp"

namespace framed::http {

struct StatusPageContext {
  std::string_view version;
  bool draining = false;
};

// Escapes & < > " ' for text and attribute values.
void append_html_escaped(std::string& out, std::string_view text);

void render_status_page(const server::StatsSnapshot& snapshot, const StatusPageContext& context, std::string& out);

}  // namespace framed::http
