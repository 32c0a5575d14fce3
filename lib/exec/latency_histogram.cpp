#include "exec/latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace framed::exec {

std::size_t LatencyHistogram::index_of(std::uint64_t micros) noexcept {
  if (micros < kSubBuckets) return static_cast<std::size_t>(micros);
  unsigned exponent = static_cast<unsigned>(std::bit_width(micros)) - 1;  // >= kSubBits
  std::uint64_t sub = (micros >> (exponent - kSubBits)) & (kSubBuckets - 1);
  if (exponent > kMaxExponent) {
    exponent = kMaxExponent;
    sub = kSubBuckets - 1;
  }
  return kSubBuckets + (exponent - kSubBits) * kSubBuckets + static_cast<std::size_t>(sub);
}

std::uint64_t LatencyHistogram::upper_bound_of(std::size_t index) noexcept {
  if (index < kSubBuckets) return index;
  const auto exponent = static_cast<unsigned>((index - kSubBuckets) / kSubBuckets) + kSubBits;
  const std::uint64_t sub = (index - kSubBuckets) % kSubBuckets;
  const unsigned shift = exponent - kSubBits;
  const std::uint64_t lower = (kSubBuckets + sub) << shift;
  return lower + (std::uint64_t{1} << shift) - 1;
}

void LatencyHistogram::record(std::chrono::nanoseconds latency) noexcept {
  const auto micros = static_cast<std::uint64_t>(
      std::max<std::int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(latency).count(), 0));
  ++counts_[index_of(micros)];
  ++count_;
  max_ = std::max(max_, micros);
}

std::chrono::microseconds LatencyHistogram::percentile(double fraction) const noexcept {
  if (count_ == 0) return std::chrono::microseconds(0);
  fraction = std::clamp(fraction, 0.0, 1.0);
  // The rank of the sample wanted, 1-based: p50 of 1..10 is the 5th.
  const auto wanted = static_cast<std::uint64_t>(std::ceil(fraction * static_cast<double>(count_)));
  const std::uint64_t rank = std::max<std::uint64_t>(1, wanted);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    // The last bucket is open-ended: its bound is the largest sample.
    if (seen >= rank && i + 1 == kBuckets) break;
    if (seen >= rank) return std::chrono::microseconds(std::min(upper_bound_of(i), max_));
  }
  return std::chrono::microseconds(max_);
}

}  // namespace framed::exec
