#pragma once
// Length prefixes are big-endian (network order) unless a listener says
// `byte_order = "little"` for clients that pack a native int on x86.

#include <cstdint>
#include <cstring>

namespace framed::codec {

enum class ByteOrder : std::uint8_t { big, little };

inline std::uint32_t load_u32(const char* p, ByteOrder order) noexcept {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  if (order == ByteOrder::big) {
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
  }
  return (std::uint32_t{b[3]} << 24) | (std::uint32_t{b[2]} << 16) | (std::uint32_t{b[1]} << 8) | b[0];
}

inline std::uint64_t load_u64(const char* p, ByteOrder order) noexcept {
  const std::uint64_t first = load_u32(p, order);
  const std::uint64_t second = load_u32(p + 4, order);
  return order == ByteOrder::big ? (first << 32) | second : (second << 32) | first;
}

inline void store_u32(char* p, std::uint32_t value, ByteOrder order) noexcept {
  auto* b = reinterpret_cast<unsigned char*>(p);
  for (int i = 0; i < 4; ++i) {
    const int shift = order == ByteOrder::big ? 24 - 8 * i : 8 * i;
    b[i] = static_cast<unsigned char>(value >> shift);
  }
}

inline void store_u64(char* p, std::uint64_t value, ByteOrder order) noexcept {
  const auto high = static_cast<std::uint32_t>(value >> 32);
  const auto low = static_cast<std::uint32_t>(value);
  store_u32(p, order == ByteOrder::big ? high : low, order);
  store_u32(p + 4, order == ByteOrder::big ? low : high, order);
}

}  // namespace framed::codec
