#pragma once
// Latencies for the percentiles in `stats`: a log-linear histogram, the idea
// of HdrHistogram at its simplest. Values are whole microseconds; below 8 µs
// each value has its own bucket, above it each power of two is split into 8
// buckets, so a percentile is reported as an upper bound at most 12.5% above
// the truth. Memory is fixed (312 counters) whatever the uptime or the rate.
//
// Not thread-safe: one owner (the reactor thread records and reads).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace framed::exec {

class LatencyHistogram {
 public:
  void record(std::chrono::nanoseconds latency) noexcept;

  // The latency at or under which `fraction` (0 to 1) of the samples lie:
  // the upper bound of that sample's bucket, never above the largest sample.
  // Zero when nothing was recorded.
  [[nodiscard]] std::chrono::microseconds percentile(double fraction) const noexcept;
  [[nodiscard]] std::chrono::microseconds max() const noexcept { return std::chrono::microseconds(max_); }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }

 private:
  static constexpr unsigned kSubBits = 3;  // 8 buckets per power of two
  static constexpr unsigned kSubBuckets = 1U << kSubBits;
  // 2^40 µs is 12.7 days: anything longer shares the last bucket.
  static constexpr unsigned kMaxExponent = 40;
  static constexpr std::size_t kBuckets = kSubBuckets + (kMaxExponent - kSubBits + 1) * kSubBuckets;

  static std::size_t index_of(std::uint64_t micros) noexcept;
  static std::uint64_t upper_bound_of(std::size_t index) noexcept;

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace framed::exec
