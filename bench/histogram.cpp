#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace framed::bench {

LatencyHistogram::LatencyHistogram() : counts_(kBucketCount, 0) {}

std::size_t LatencyHistogram::index_of(std::uint64_t value) noexcept {
  // Bucket b holds values of bit width kSubBucketBits + b, at a resolution
  // of 2^b; its upper half of sub-buckets follows bucket b-1's directly.
  const unsigned width = static_cast<unsigned>(std::bit_width(value));
  const unsigned bucket = width <= kSubBucketBits ? 0 : width - kSubBucketBits;
  return static_cast<std::size_t>(bucket * kSubBucketHalf + (value >> bucket));
}

std::uint64_t LatencyHistogram::highest_equivalent(std::size_t index) noexcept {
  const std::uint64_t bucket = index < kSubBucketCount ? 0 : index / kSubBucketHalf - 1;
  const std::uint64_t sub = index - bucket * kSubBucketHalf;
  return (sub << bucket) + (1ULL << bucket) - 1;
}

void LatencyHistogram::record(std::uint64_t nanoseconds) noexcept {
  const std::uint64_t value = std::min(nanoseconds, kMaxValue);
  ++counts_[index_of(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<long double>(value);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

double LatencyHistogram::mean() const noexcept {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::uint64_t LatencyHistogram::percentile(double percent) const noexcept {
  if (count_ == 0) return 0;
  const double wanted = std::ceil(std::clamp(percent, 0.0, 100.0) / 100.0 * static_cast<double>(count_));
  const std::uint64_t rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(wanted));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(highest_equivalent(i), min_, max_);
  }
  return max_;
}

}  // namespace framed::bench
