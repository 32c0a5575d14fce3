#include "progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

namespace framed::framectl {
namespace {

// Redraws are throttled to this: a terminal need not see every 256 KiB.
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);
  return text;
}

std::string clock_text(double seconds) {
  const auto whole = static_cast<long long>(seconds + 0.5);
  char text[32];
  if (whole >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", whole / 3600, whole / 60 % 60, whole % 60);
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", whole / 60, whole % 60);
  }
  return text;
}

}  // namespace

Progress::Progress(std::string label, std::uint64_t total, std::uint64_t done)
    : enabled_(::isatty(STDERR_FILENO) == 1),
      label_(std::move(label)),
      total_(total),
      start_done_(done),
      done_(done),
      started_(Clock::now()),
      last_draw_(started_) {
  if (enabled_) draw(false);
}

Progress::~Progress() {
  if (enabled_ && !finished_) {
    finished_ = true;
    std::fputs("\n", stderr);
  }
}

void Progress::advance(std::uint64_t bytes) {
  done_ += bytes;
  if (!enabled_) return;
  if (Clock::now() - last_draw_ >= kRedrawInterval) draw(false);
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  draw(true);
  std::fputs("\n", stderr);
  finished_ = true;
}

void Progress::draw(bool final) {
  const auto now = Clock::now();
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_ - start_done_) / elapsed : 0;
  const double percent = total_ == 0 ? 100.0 : 100.0 * static_cast<double>(done_) / static_cast<double>(total_);
  std::string eta = "--:--";
  if (final) {
    eta = clock_text(elapsed);
  } else if (rate > 0) {
    eta = clock_text(static_cast<double>(total_ - std::min(done_, total_)) / rate);
  }
  const std::string line_done = human_bytes(static_cast<double>(done_));
  const std::string line_total = human_bytes(static_cast<double>(total_));
  const std::string line_rate = human_bytes(rate);
  // "\r" then the line, then clear to its end ("\033[K"): a shorter line
  // than the last leaves nothing behind.
  std::fprintf(stderr, "\r%s %s / %s %3.0f%% %s/s %s %s\033[K", label_.c_str(), line_done.c_str(),
               line_total.c_str(), percent, line_rate.c_str(), final ? "in" : "ETA", eta.c_str());
  std::fflush(stderr);
}

}  // namespace framed::framectl
