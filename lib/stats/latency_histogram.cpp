#include "stats/latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace framed::stats {

template <typename Resolution>
LatencyHistogram<Resolution>::LatencyHistogram() : counts_(kBucketCount, 0) {}

template <typename Resolution>
std::size_t LatencyHistogram<Resolution>::index_of(std::uint64_t value) noexcept {
  value = std::min(value, kMaxValue);  // larger values share the last bucket
  // Bucket b holds values of bit width kSubBucketBits + b, at a resolution
  // of 2^b; its upper half of sub-buckets follows bucket b-1's directly.
  const auto width = static_cast<unsigned>(std::bit_width(value));
  const unsigned bucket = width <= kSubBucketBits ? 0 : width - kSubBucketBits;
  return static_cast<std::size_t>(bucket * kSubBucketHalf + (value >> bucket));
}

template <typename Resolution>
std::uint64_t LatencyHistogram<Resolution>::highest_equivalent(std::size_t index) noexcept {
  const std::uint64_t bucket = index < kSubBucketCount ? 0 : index / kSubBucketHalf - 1;
  const std::uint64_t sub = index - bucket * kSubBucketHalf;
  return (sub << bucket) + (std::uint64_t{1} << bucket) - 1;
}

template <typename Resolution>
void LatencyHistogram<Resolution>::record(std::chrono::nanoseconds latency, std::uint64_t times) noexcept {
  if (times == 0) return;
  const auto value = static_cast<std::uint64_t>(
      std::max<typename Resolution::rep>(std::chrono::duration_cast<Resolution>(latency).count(), 0));
  counts_[index_of(value)] += times;
  count_ += times;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += value * times;
}

template <typename Resolution>
void LatencyHistogram<Resolution>::merge(const LatencyHistogram& other) noexcept {
  for (std::size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

template <typename Resolution>
typename LatencyHistogram<Resolution>::Mean LatencyHistogram<Resolution>::mean() const noexcept {
  return Mean(count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_));
}

template <typename Resolution>
Resolution LatencyHistogram<Resolution>::percentile(double fraction) const noexcept {
  if (count_ == 0) return Resolution(0);
  // The rank of the sample wanted, 1-based: p50 of 1..10 is the 5th.
  const double wanted = std::ceil(std::clamp(fraction, 0.0, 1.0) * static_cast<double>(count_));
  const std::uint64_t rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(wanted));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i + 1 < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) return Resolution(std::min(highest_equivalent(i), max_));
  }
  // The last bucket is open-ended: its bound is the largest sample.
  return Resolution(max_);
}

template <typename Resolution>
void LatencyHistogram<Resolution>::cumulative_counts(std::span<const Resolution> bounds,
                                                     std::span<std::uint64_t> out) const noexcept {
  std::size_t bucket = 0;
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < bounds.size() && b < out.size(); ++b) {
    if (bounds[b].count() < 0) {
      out[b] = 0;
      continue;
    }
    const auto limit = static_cast<std::uint64_t>(bounds[b].count());
    if (limit >= max_) {
      out[b] = count_;  // every sample is at or under it, the open last bucket's too
      continue;
    }
    for (; bucket + 1 < kBucketCount && highest_equivalent(bucket) <= limit; ++bucket) seen += counts_[bucket];
    out[b] = seen;
  }
}

template class LatencyHistogram<std::chrono::microseconds>;
template class LatencyHistogram<std::chrono::nanoseconds>;

}  // namespace framed::stats
