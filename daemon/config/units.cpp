#include "config/units.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <utility>

namespace framed::config {
namespace {

constexpr std::string_view kDigits = "0123456789";

// Parses all of `digits` (ASCII digits only, non-empty) into `out`;
// false on overflow.
bool parse_digits(std::string_view digits, std::uint64_t& out) {
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
  return ec == std::errc() && end == digits.data() + digits.size();
}

std::string in_quotes(std::string_view text) {
  std::string out = "\"";
  out.append(text);
  out += '"';
  return out;
}

template <typename T>
UnitParse<T> fail(std::string_view kind, std::string_view text, std::string_view why) {
  UnitParse<T> result;
  result.error = "invalid ";
  result.error.append(kind);
  result.error += ' ';
  result.error += in_quotes(text);
  result.error += ": ";
  result.error.append(why);
  return result;
}

}  // namespace

UnitParse<std::uint64_t> parse_size(std::string_view text) {
  constexpr std::string_view kKind = "size";
  constexpr std::string_view kExpected =
      "expected a whole number followed by KiB, MiB or GiB, e.g. \"4GiB\", or an integer "
      "number of bytes";
  if (text.empty()) return fail<std::uint64_t>(kKind, text, kExpected);
  if (text.front() == '-') return fail<std::uint64_t>(kKind, text, "must not be negative");

  const std::size_t digits_end = std::min(text.find_first_not_of(kDigits), text.size());
  if (digits_end == 0) return fail<std::uint64_t>(kKind, text, kExpected);
  const std::string_view digits = text.substr(0, digits_end);
  const std::string_view unit = text.substr(digits_end);

  if (unit.empty()) {
    return fail<std::uint64_t>(
        kKind, text,
        "a size string needs a unit (KiB, MiB or GiB); write a byte count as a plain "
        "integer without quotes");
  }
  if (unit.front() == '.') {
    return fail<std::uint64_t>(kKind, text,
                               "fractions are not allowed; write a whole number of bytes, "
                               "KiB, MiB or GiB");
  }

  // Binary units only: "GB" means 10^9 to some readers and 2^30 to others.
  static constexpr std::array<std::pair<std::string_view, unsigned>, 3> kUnits{{
      {"KiB", 10},
      {"MiB", 20},
      {"GiB", 30},
  }};
  unsigned shift = 0;
  bool known = false;
  for (const auto& [name, bits] : kUnits) {
    if (unit == name) {
      shift = bits;
      known = true;
    }
  }
  if (!known) return fail<std::uint64_t>(kKind, text, kExpected);

  std::uint64_t count = 0;
  if (!parse_digits(digits, count) ||
      count > (std::numeric_limits<std::uint64_t>::max() >> shift)) {
    return fail<std::uint64_t>(kKind, text, "too large");
  }
  UnitParse<std::uint64_t> result;
  result.value = count << shift;
  return result;
}

UnitParse<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  using Result = UnitParse<std::chrono::nanoseconds>;
  constexpr std::string_view kKind = "duration";
  constexpr std::string_view kExpected =
      "expected a number followed by ms, s, m or h, e.g. \"1.5s\"";
  constexpr std::uint64_t kMaxNs = std::numeric_limits<std::int64_t>::max();

  if (text.empty()) return fail<std::chrono::nanoseconds>(kKind, text, kExpected);
  if (text.front() == '-') {
    return fail<std::chrono::nanoseconds>(kKind, text, "must not be negative");
  }

  std::size_t pos = std::min(text.find_first_not_of(kDigits), text.size());
  if (pos == 0) return fail<std::chrono::nanoseconds>(kKind, text, kExpected);
  const std::string_view whole_digits = text.substr(0, pos);
  std::string_view fraction_digits;
  if (pos < text.size() && text[pos] == '.') {
    const std::size_t start = pos + 1;
    const std::size_t end = std::min(text.find_first_not_of(kDigits, start), text.size());
    if (end == start) return fail<std::chrono::nanoseconds>(kKind, text, kExpected);
    fraction_digits = text.substr(start, end - start);
    pos = end;
  }
  const std::string_view unit = text.substr(pos);
  if (unit.empty()) {
    return fail<std::chrono::nanoseconds>(kKind, text,
                                          "missing unit (ms, s, m or h), e.g. \"10s\"");
  }

  // A unit's length in ns written as mantissa * 10^exponent, so that a
  // fraction can be applied exactly: 0.5ms = 5 * 1 * 10^(6-1) ns.
  struct Unit {
    std::string_view name;
    std::uint64_t mantissa;
    unsigned exponent;
  };
  static constexpr std::array<Unit, 4> kUnits{{
      {"ms", 1, 6},
      {"s", 1, 9},
      {"m", 6, 10},
      {"h", 36, 11},
  }};
  const Unit* found = nullptr;
  for (const auto& candidate : kUnits) {
    if (unit == candidate.name) found = &candidate;
  }
  if (found == nullptr) return fail<std::chrono::nanoseconds>(kKind, text, kExpected);

  std::uint64_t unit_ns = found->mantissa;
  for (unsigned i = 0; i < found->exponent; ++i) unit_ns *= 10;

  std::uint64_t whole = 0;
  if (!parse_digits(whole_digits, whole) || whole > kMaxNs / unit_ns) {
    return fail<std::chrono::nanoseconds>(kKind, text, "too large");
  }
  std::uint64_t total = whole * unit_ns;

  // Trailing zeros carry no value ("1.50s" = "1.5s").
  while (!fraction_digits.empty() && fraction_digits.back() == '0') {
    fraction_digits.remove_suffix(1);
  }
  if (!fraction_digits.empty()) {
    // 17 digits keep fraction * 36 (the largest mantissa) below 2^63; a
    // longer fraction without trailing zeros is never a whole number of ns.
    constexpr std::size_t kMaxFractionDigits = 17;
    const std::size_t places = fraction_digits.size();
    std::uint64_t fraction = 0;
    if (places > kMaxFractionDigits || !parse_digits(fraction_digits, fraction)) {
      return fail<std::chrono::nanoseconds>(kKind, text, "finer than a nanosecond");
    }
    // fraction / 10^places units = fraction * mantissa * 10^(exponent - places) ns.
    std::uint64_t ns = fraction * found->mantissa;
    if (places <= found->exponent) {
      for (std::size_t i = places; i < found->exponent; ++i) ns *= 10;
    } else {
      std::uint64_t divisor = 1;
      for (std::size_t i = found->exponent; i < places; ++i) divisor *= 10;
      if (ns % divisor != 0) {
        return fail<std::chrono::nanoseconds>(kKind, text, "finer than a nanosecond");
      }
      ns /= divisor;
    }
    if (ns > kMaxNs - total) return fail<std::chrono::nanoseconds>(kKind, text, "too large");
    total += ns;
  }

  Result result;
  result.value = std::chrono::nanoseconds(static_cast<std::int64_t>(total));
  return result;
}

}  // namespace framed::config
