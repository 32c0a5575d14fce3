#pragma once
// Latency histogram with HdrHistogram's log-linear layout: values below
// kSubBucketCount ns are exact; above, each power-of-two range is split into
// kSubBucketHalf linear buckets, so a reported value is within 1/128 (0.8 %)
// of the recorded one. Its size is fixed (~35 KiB), so memory stays bounded
// however long or fast the run. Not thread-safe: one per client thread,
// merged once the threads have finished.

#include <cstdint>
#include <vector>

namespace framed::bench {

class LatencyHistogram {
 public:
  LatencyHistogram();

  void record(std::uint64_t nanoseconds) noexcept;
  void merge(const LatencyHistogram& other);

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  [[nodiscard]] double mean() const noexcept;
  // The smallest recorded value v such that at least `percent` % of the
  // values are <= v (up to bucket precision); 0 when empty.
  [[nodiscard]] std::uint64_t percentile(double percent) const noexcept;

 private:
  static constexpr unsigned kSubBucketBits = 8;
  static constexpr std::uint64_t kSubBucketCount = 1ULL << kSubBucketBits;
  static constexpr std::uint64_t kSubBucketHalf = kSubBucketCount / 2;
  // 2^40 ns is about 18 minutes, beyond any run's hard deadline; larger
  // values are clamped rather than grown into.
  static constexpr unsigned kMaxValueBits = 40;
  static constexpr std::uint64_t kMaxValue = (1ULL << kMaxValueBits) - 1;
  static constexpr std::size_t kBucketCount = (kMaxValueBits - kSubBucketBits + 2) * kSubBucketHalf;

  static std::size_t index_of(std::uint64_t value) noexcept;
  static std::uint64_t highest_equivalent(std::size_t index) noexcept;

  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  long double sum_ = 0;  // long double: 1e9 samples of ~1e6 ns stay exact enough
};

}  // namespace framed::bench
