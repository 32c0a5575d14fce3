// Tests for lib/stats/latency_histogram: percentiles of known distributions
// within the documented precision (at most 1/128 above the true value),
// merging, the empty histogram and values past the last bucket.

#include <catch2/catch.hpp>
#include <array>
#include <chrono>
#include <cstdint>

#include "stats/latency_histogram.hpp"

using framed::stats::LatencyHistogram;
using namespace std::chrono_literals;

namespace {

using NanosecondHistogram = LatencyHistogram<std::chrono::nanoseconds>;
using MicrosecondHistogram = LatencyHistogram<std::chrono::microseconds>;

// A percentile is the upper bound of its sample's bucket: never below the
// true value, and at most 1/128 of it above.
template <typename Duration>
bool within_precision(Duration got, Duration want) {
  return got >= want && got.count() <= want.count() + want.count() / 128;
}

NanosecondHistogram uniform(std::int64_t first, std::int64_t last) {
  NanosecondHistogram histogram;
  for (std::int64_t v = first; v <= last; ++v) histogram.record(std::chrono::nanoseconds(v));
  return histogram;
}

}  // namespace

TEST_CASE("an empty histogram reports zeros", "[stats]") {
  const MicrosecondHistogram histogram;
  CHECK(histogram.count() == 0);
  CHECK(histogram.percentile(0.5) == 0us);
  CHECK(histogram.percentile(1.0) == 0us);
  CHECK(histogram.min() == 0us);
  CHECK(histogram.max() == 0us);
  CHECK(histogram.mean().count() == 0.0);
}

TEST_CASE("percentiles of a uniform distribution", "[stats]") {
  const NanosecondHistogram histogram = uniform(1, 1'000'000);
  CHECK(histogram.count() == 1'000'000);
  CHECK(histogram.min() == 1ns);
  CHECK(histogram.max() == 1'000'000ns);
  CHECK(histogram.mean().count() == Approx(500'000.5));
  CHECK(within_precision(histogram.percentile(0.50), 500'000ns));
  CHECK(within_precision(histogram.percentile(0.90), 900'000ns));
  CHECK(within_precision(histogram.percentile(0.99), 990'000ns));
  CHECK(within_precision(histogram.percentile(0.999), 999'000ns));
  CHECK(histogram.percentile(1.0) == histogram.max());  // never above the largest sample
  CHECK(histogram.percentile(0.0) == 1ns);              // the first sample's bucket
}

TEST_CASE("percentiles of a long-tailed distribution", "[stats]") {
  // 98.9 % fast replies, 1 % slow ones, 0.1 % very slow: the shape exec
  // latencies take when a few commands hit their timeout.
  MicrosecondHistogram histogram;
  for (int i = 0; i < 989; ++i) histogram.record(120us);
  for (int i = 0; i < 10; ++i) histogram.record(15ms);
  histogram.record(10s);
  CHECK(within_precision(histogram.percentile(0.50), 120us));
  CHECK(within_precision(histogram.percentile(0.90), 120us));
  CHECK(within_precision(histogram.percentile(0.99), std::chrono::microseconds(15ms)));
  CHECK(within_precision(histogram.percentile(0.999), std::chrono::microseconds(15ms)));
  CHECK(histogram.percentile(1.0) == 10s);
  CHECK(histogram.max() == 10s);
}

TEST_CASE("small values are exact", "[stats]") {
  NanosecondHistogram histogram;
  for (const auto v : {3ns, 3ns, 200ns, 255ns}) histogram.record(v);
  CHECK(histogram.percentile(0.5) == 3ns);
  CHECK(histogram.percentile(0.75) == 200ns);
  CHECK(histogram.percentile(1.0) == 255ns);
}

TEST_CASE("recording truncates to the resolution and treats negatives as zero", "[stats]") {
  MicrosecondHistogram histogram;
  histogram.record(1999ns);
  histogram.record(-5ms);
  CHECK(histogram.count() == 2);
  CHECK(histogram.max() == 1us);
  CHECK(histogram.min() == 0us);
  CHECK(histogram.percentile(0.5) == 0us);
}

TEST_CASE("merging per-thread histograms equals recording into one", "[stats]") {
  const NanosecondHistogram whole = uniform(1, 200'000);
  NanosecondHistogram merged = uniform(100'001, 200'000);
  merged.merge(uniform(1, 100'000));
  CHECK(merged.count() == whole.count());
  CHECK(merged.min() == whole.min());
  CHECK(merged.max() == whole.max());
  CHECK(merged.mean().count() == Approx(whole.mean().count()));
  for (const double fraction : {0.0, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    CHECK(merged.percentile(fraction) == whole.percentile(fraction));
  }

  SECTION("an empty histogram changes nothing either way") {
    NanosecondHistogram into_empty;
    into_empty.merge(whole);
    CHECK(into_empty.count() == whole.count());
    CHECK(into_empty.min() == whole.min());
    CHECK(into_empty.percentile(0.5) == whole.percentile(0.5));
    merged.merge(NanosecondHistogram());
    CHECK(merged.count() == whole.count());
    CHECK(merged.min() == whole.min());
    CHECK(merged.max() == whole.max());
  }
}

TEST_CASE("values past the last bucket are counted and max stays exact", "[stats]") {
  // 2^40 units is the last bucket's top: 18 minutes in nanoseconds, 12 days
  // in microseconds.
  MicrosecondHistogram histogram;
  histogram.record(3us);
  histogram.record(0us);
  histogram.record(std::chrono::hours(24 * 365));
  CHECK(histogram.count() == 3);
  CHECK(histogram.percentile(0.3) == 0us);
  CHECK(histogram.percentile(0.6) == 3us);
  CHECK(histogram.percentile(1.0) == std::chrono::hours(24 * 365));
  CHECK(histogram.max() == std::chrono::hours(24 * 365));

  NanosecondHistogram nanoseconds;
  nanoseconds.record(1h);
  nanoseconds.record(2h);
  CHECK(nanoseconds.percentile(0.5) == 2h);  // both share the open-ended last bucket
  CHECK(nanoseconds.max() == 2h);
  CHECK(nanoseconds.mean() == 90min);
}

TEST_CASE("a batch of samples counts as that many single samples", "[stats]") {
  MicrosecondHistogram batched;
  MicrosecondHistogram single;
  batched.record(7us, 16);
  batched.record(0us, 0);  // nothing: min stays 7
  for (int i = 0; i < 16; ++i) single.record(7us);
  CHECK(batched.count() == 16);
  CHECK(batched.sum() == 16 * 7);
  CHECK(batched.min() == 7us);
  CHECK(batched.percentile(0.5) == single.percentile(0.5));
  CHECK(batched.mean() == single.mean());
}

TEST_CASE("cumulative counts at bounds, as a Prometheus histogram's le buckets", "[stats]") {
  MicrosecondHistogram histogram;
  for (int v = 1; v <= 1000; ++v) histogram.record(std::chrono::microseconds(v));
  histogram.record(std::chrono::seconds(30));  // far past the last bound but one

  const std::array<std::chrono::microseconds, 6> bounds{0us, 10us, 100us, 250us, 1000us, 10'000'000us};
  std::array<std::uint64_t, 6> counts{};
  histogram.cumulative_counts(bounds, counts);
  CHECK(counts[0] == 0);
  // Up to 256 units every value has its own bucket: exact.
  CHECK(counts[1] == 10);
  CHECK(counts[2] == 100);
  CHECK(counts[3] == 250);
  // Above, a bucket straddling the bound is left out: low by at most 1/128
  // of the bound, never high.
  CHECK(counts[4] <= 1000);
  CHECK(counts[4] >= 1000 - 1000 / 128);
  CHECK(counts[5] == 1000);

  // A bound at or past the largest sample counts everything.
  const std::array<std::chrono::microseconds, 1> all{std::chrono::seconds(30)};
  std::array<std::uint64_t, 1> every{};
  histogram.cumulative_counts(all, every);
  CHECK(every[0] == 1001);
}

TEST_CASE("cumulative counts of an empty histogram are zero", "[stats]") {
  const MicrosecondHistogram histogram;
  const std::array<std::chrono::microseconds, 2> bounds{1us, 1000us};
  std::array<std::uint64_t, 2> counts{9, 9};
  histogram.cumulative_counts(bounds, counts);
  CHECK(counts[0] == 0);
  CHECK(counts[1] == 0);
}
