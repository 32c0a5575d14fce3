#pragma once
// A request rate as a token bucket: `rate` tokens a second, at most `rate`
// held (one second's worth of burst). A request takes one token; none left
// means the client is past its rate and is answered too_busy. Refilled
// lazily from the time of each take, so an idle bucket costs nothing.
//
// Shared by the connections of one principal on every reactor: a mutex
// (uncontended on one reactor, and only for principals with a rate) keeps
// one rate for the whole daemon.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "base/clock.hpp"

namespace framed::auth {

class TokenBucket {
 public:
  explicit TokenBucket(std::uint32_t rate) noexcept { set_rate(rate); }

  // A reload may change the rate: what the bucket holds stays, capped.
  void set_rate(std::uint32_t rate) noexcept {
    const std::lock_guard lock(mutex_);
    rate_ = std::max<std::uint32_t>(rate, 1);
    capacity_ = static_cast<std::int64_t>(rate_) * kScale;
    tokens_ = std::min(tokens_ < 0 ? capacity_ : tokens_, capacity_);
  }

  // One request at `now`: true when a token was there.
  bool take(base::TimePoint now) noexcept {
    const std::lock_guard lock(mutex_);
    refill(now);
    if (tokens_ < kScale) return false;
    tokens_ -= kScale;
    return true;
  }

  [[nodiscard]] std::uint32_t rate() const noexcept {
    const std::lock_guard lock(mutex_);
    return rate_;
  }

 private:
  // Tokens in millionths, so that a rate of 1/s refills by whole units per
  // microsecond without floating point.
  static constexpr std::int64_t kScale = 1'000'000;

  void refill(base::TimePoint now) noexcept {
    if (last_ == base::TimePoint{}) {
      last_ = now;
      return;
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - last_).count();
    if (elapsed <= 0) return;
    last_ = now;
    // elapsed µs × rate/s = elapsed × rate millionths; capped before it can
    // overflow (a bucket idle for a day is simply full).
    const std::int64_t earned = elapsed >= capacity_ / rate_ ? capacity_ : elapsed * rate_;
    tokens_ = std::min(capacity_, tokens_ + earned);
  }

  mutable std::mutex mutex_;
  std::uint32_t rate_ = 1;
  std::int64_t capacity_ = kScale;
  std::int64_t tokens_ = -1;  // -1: not set yet (a new bucket starts full)
  base::TimePoint last_{};
};

}  // namespace framed::auth
