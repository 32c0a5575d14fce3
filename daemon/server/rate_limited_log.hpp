#pragma once
// A log line that may repeat in a tight loop (EMFILE, a flood of garbage
// datagrams) is written at most once per interval, with the count of those
// suppressed meanwhile: the journal is not a client's to fill.

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "base/clock.hpp"

namespace framed::server {

class RateLimitedLog {
 public:
  RateLimitedLog(spdlog::level::level_enum level, std::chrono::nanoseconds interval) noexcept
      : level_(level), interval_(interval) {}

  // True when a line may be written now (then call written()); false counts
  // one more suppressed.
  bool may_write(base::TimePoint now) noexcept {
    if (!spdlog::should_log(level_)) return false;
    if (last_ != base::TimePoint{} && now - last_ < interval_) {
      ++suppressed_;
      return false;
    }
    last_ = now;
    return true;
  }
  // " (N similar lines suppressed)", or nothing; resets the count.
  std::string take_suppressed_note() {
    std::string note;
    if (suppressed_ != 0) note = " (" + std::to_string(suppressed_) + " similar lines suppressed)";
    suppressed_ = 0;
    return note;
  }
  void warn(base::TimePoint now, const std::string& message) {
    if (may_write(now)) spdlog::log(level_, "{}{}", message, take_suppressed_note());
  }

 private:
  spdlog::level::level_enum level_;
  std::chrono::nanoseconds interval_;
  base::TimePoint last_{};
  std::uint64_t suppressed_ = 0;
};

}  // namespace framed::server
