#pragma once
// The one clock the reactor and its timeouts use: monotonic, so wall-clock
// steps (NTP, manual date changes) never fire or starve a timeout.

#include <chrono>

namespace framed::base {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::nanoseconds;

}  // namespace framed::base
