#pragma once
// Sizes and durations as operators write them in framed.toml (CONFIG.md):
//
//   size      a TOML integer (bytes, >= 0), or a string "<digits><unit>" with
//             unit KiB, MiB or GiB (powers of 1024): "512KiB", "4GiB".
//             Rejected: a unit-less string ("10": write the integer 10),
//             fractions ("1.5KiB": bytes are whole), decimal units ("4GB",
//             "4G": ambiguous between 10^9 and 2^30), spaces ("4 GiB"),
//             signs ("-1KiB", "+1KiB"), anything past 2^64-1.
//   duration  a string "<digits>[.<digits>]<unit>" with unit ms, s, m or h:
//             "10ms", "1.5s", "5m", "1h". Rejected: a bare number, TOML
//             integer or float ("10", 10, 1.5: the unit must be explicit),
//             signs ("-1s"), exponents, spaces ("10 s"), compound forms
//             ("1h30m"), unknown units ("10 parsecs", "10us"), anything finer
//             than a nanosecond or longer than ~292 years (int64 ns).
//
// Pure functions over text; thread-safe; no allocation except for the error.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace framed::config {

// A parsed value or, when `value` is empty, why not: a phrase such as
// `invalid size "4GB": ...` that a caller prefixes with the key's name.
template <typename T>
struct UnitParse {
  std::optional<T> value;
  std::string error;
};

// The string form of a size (the integer form needs no parsing).
UnitParse<std::uint64_t> parse_size(std::string_view text);

// A duration string; the result is exact (no floating point on the way).
UnitParse<std::chrono::nanoseconds> parse_duration(std::string_view text);

}  // namespace framed::config
