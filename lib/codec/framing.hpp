#pragma once
// The framing vocabulary: what a listener speaks on the wire. One set of
// names for the configuration (which parses them), the codec (which encodes
// and decodes them) and the server (which logs them); adding a framing starts
// here.
//
//   json      u32 H · H bytes of JSON header · total_size bytes of body
//   length    u32 L · L bytes of payload (simple mode)
//   line      payload · \n (simple mode; replies escaped to one line)
//   datagram  one datagram = one message; `payload` says which kind:
//             text (a simple-mode payload) or json (one json frame)
//   raw       no request framing: what one read of the socket returns is one
//             simple-mode message (unframed legacy clients); replies are
//             framed by `reply_framing`: raw bytes, a u32 length, or json

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "codec/byte_order.hpp"

namespace framed::codec {

enum class Framing : std::uint8_t { json, length, line, datagram, raw };
enum class Payload : std::uint8_t { text, json };
// How a `raw` listener frames its replies.
enum class ReplyFraming : std::uint8_t { raw, length, json };

// A name as written in the config file, and its value.
template <typename E>
struct Named {
  std::string_view name;
  E value;
};

inline constexpr std::array<Named<Framing>, 5> kFramingNames{{
    {"json", Framing::json},
    {"length", Framing::length},
    {"line", Framing::line},
    {"datagram", Framing::datagram},
    {"raw", Framing::raw},
}};
inline constexpr std::array<Named<ReplyFraming>, 3> kReplyFramingNames{{
    {"raw", ReplyFraming::raw},
    {"length", ReplyFraming::length},
    {"json", ReplyFraming::json},
}};
inline constexpr std::array<Named<Payload>, 2> kPayloadNames{{
    {"text", Payload::text},
    {"json", Payload::json},
}};
inline constexpr std::array<Named<ByteOrder>, 2> kByteOrderNames{{
    {"big", ByteOrder::big},
    {"little", ByteOrder::little},
}};

template <typename E, std::size_t N>
[[nodiscard]] constexpr std::string_view name_of(const std::array<Named<E>, N>& names, E value) noexcept {
  for (const auto& entry : names) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

template <typename E, std::size_t N>
[[nodiscard]] constexpr std::optional<E> value_of(const std::array<Named<E>, N>& names,
                                                  std::string_view name) noexcept {
  for (const auto& entry : names) {
    if (entry.name == name) return entry.value;
  }
  return std::nullopt;
}

[[nodiscard]] constexpr std::string_view to_string(Framing framing) noexcept {
  return name_of(kFramingNames, framing);
}
[[nodiscard]] constexpr std::string_view to_string(Payload payload) noexcept {
  return name_of(kPayloadNames, payload);
}
[[nodiscard]] constexpr std::string_view to_string(ByteOrder order) noexcept {
  return name_of(kByteOrderNames, order);
}
[[nodiscard]] constexpr std::string_view to_string(ReplyFraming framing) noexcept {
  return name_of(kReplyFramingNames, framing);
}

// Everything the encoders and decoders need to know about a listener's wire.
struct WireFormat {
  Framing framing = Framing::json;
  Payload payload = Payload::text;  // datagram only
  ByteOrder byte_order = ByteOrder::big;
  ReplyFraming reply_framing = ReplyFraming::raw;  // raw only

  // Requests are json frames (header + body), whatever carries them.
  [[nodiscard]] constexpr bool json_frames() const noexcept {
    return framing == Framing::json || (framing == Framing::datagram && payload == Payload::json);
  }
  // Requests are simple-mode payloads: `COMMAND ARGUMENTS`.
  [[nodiscard]] constexpr bool simple_mode() const noexcept { return !json_frames(); }
  // Replies are json frames: on json framings, and on a raw listener whose
  // reply_framing is json (a simple-mode request, a full-fidelity reply).
  [[nodiscard]] constexpr bool json_replies() const noexcept {
    return json_frames() || (framing == Framing::raw && reply_framing == ReplyFraming::json);
  }
  // Replies carry a u32 length prefix before their payload (simple mode).
  [[nodiscard]] constexpr bool length_prefixed_replies() const noexcept {
    return framing == Framing::length || (framing == Framing::raw && reply_framing == ReplyFraming::length);
  }

  friend constexpr bool operator==(const WireFormat&, const WireFormat&) = default;
};

}  // namespace framed::codec
