#pragma once
// spdlog to stderr. Under systemd (JOURNAL_STREAM set) lines carry no time
// stamp: journald adds its own, and two would only be noise.

#include "config/config.hpp"

namespace framed {

void setup_logging();
void set_log_level(config::LogLevel level);

}  // namespace framed
