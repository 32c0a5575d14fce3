#pragma once
// Latencies for percentiles: HdrHistogram's log-linear layout at its
// simplest. Values are counted in whole units of `Resolution`; the first 256
// values have a bucket each, above that each power of two is split into 128
// buckets, so a percentile is at most 1/128 (0.8 %) above the true value.
// Memory is fixed (4352 counters, 34 KiB) whatever the uptime or the rate,
// and recording is one increment.
//
// The daemon keeps microseconds (`stats` reports them, and 2^40 µs spans 12
// days); the load generator keeps nanoseconds (2^40 ns is 18 minutes, beyond
// any run). Larger values are still counted, in the last bucket, and max()
// stays exact.
//
// Not thread-safe: one owner records; per-thread histograms are added up
// with merge() once their threads are done.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace framed::stats {

template <typename Resolution>
class LatencyHistogram {
 public:
  using Mean = std::chrono::duration<double, typename Resolution::period>;

  LatencyHistogram();

  // Truncated to Resolution; a negative latency counts as zero. `times`
  // samples of that latency at once (requests answered in one batch).
  void record(std::chrono::nanoseconds latency, std::uint64_t times = 1) noexcept;
  void merge(const LatencyHistogram& other) noexcept;

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  // All three are zero when nothing was recorded.
  [[nodiscard]] Resolution min() const noexcept { return Resolution(count_ == 0 ? 0 : min_); }
  [[nodiscard]] Resolution max() const noexcept { return Resolution(max_); }
  [[nodiscard]] Mean mean() const noexcept;

  // The latency at or under which `fraction` (0 to 1) of the samples lie:
  // the upper bound of that sample's bucket, never above max(). Zero when
  // nothing was recorded.
  [[nodiscard]] Resolution percentile(double fraction) const noexcept;

  // For each of `bounds` (ascending), the samples known to be at or under
  // it: those of every bucket whose upper bound is at or under it (a
  // Prometheus histogram's cumulative `le` counts), in one pass. Exact up to
  // 256 units; above, a bucket that straddles a bound is left out, so a
  // count may be low by that one bucket (values within 0.8 % under the
  // bound). `out` has bounds.size() entries.
  void cumulative_counts(std::span<const Resolution> bounds, std::span<std::uint64_t> out) const noexcept;
  // The exact sum of every sample, in units of Resolution.
  [[nodiscard]] std::uint64_t sum() const noexcept { return sum_; }

 private:
  static constexpr unsigned kSubBucketBits = 8;
  static constexpr std::uint64_t kSubBucketCount = std::uint64_t{1} << kSubBucketBits;
  static constexpr std::uint64_t kSubBucketHalf = kSubBucketCount / 2;
  static constexpr unsigned kMaxValueBits = 40;
  static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << kMaxValueBits) - 1;
  static constexpr std::size_t kBucketCount = (kMaxValueBits - kSubBucketBits + 2) * kSubBucketHalf;

  static std::size_t index_of(std::uint64_t value) noexcept;
  static std::uint64_t highest_equivalent(std::size_t index) noexcept;

  // A vector, not an array: 34 KiB would not belong on a stack.
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  // Exact: 2^64 ns of summed latency is 584 years.
  std::uint64_t sum_ = 0;
};

// The two resolutions in use, compiled once in latency_histogram.cpp.
extern template class LatencyHistogram<std::chrono::microseconds>;
extern template class LatencyHistogram<std::chrono::nanoseconds>;

}  // namespace framed::stats
