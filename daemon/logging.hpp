#pragma once
// spdlog to stderr. Under systemd, when stderr is the journal
// ($JOURNAL_STREAM names stderr's device and inode), each line starts with
// its syslog priority, "<3>" for an error to "<7>" for debug, which journald
// turns into the entry's PRIORITY= (so `journalctl -p warning` filters), and
// carries no time stamp: journald adds its own.

#include "config/config.hpp"

namespace framed {

void setup_logging();
void set_log_level(config::LogLevel level);
// Whether stderr is the journal's stream (sd-daemon(3) says to compare
// $JOURNAL_STREAM with stderr's fstat, not only to see it set: a child of a
// service inherits the variable with another stderr).
[[nodiscard]] bool stderr_is_journal();

}  // namespace framed
