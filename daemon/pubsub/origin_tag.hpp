#pragma once
// Who published a bridged message: every message this process sends to Redis
// starts with its origin, a per-process random id of kOriginSize bytes, and
// the message follows byte for byte (binary-safe: no separator to escape).
// A host drops what comes back with its own origin, so that a publish is
// delivered once here (locally, at publish time) and once on every other
// host (docs/pubsub.md, "Across hosts").
//
// 16 random bytes: two processes drawing the same id is a 2^-64 chance
// across a fleet of 2^32 processes, far below any other failure.
//
// Pure functions; thread-safe.

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace framed::pubsub {

inline constexpr std::size_t kOriginSize = 16;
using Origin = std::array<char, kOriginSize>;

// A fresh id from the kernel's random source (getrandom; never blocks once
// the system has booted, and falls back to std::random_device otherwise).
[[nodiscard]] Origin random_origin();

// origin + message.
[[nodiscard]] std::string tag_message(const Origin& origin, std::string_view message);

struct TaggedMessage {
  std::string_view origin;  // kOriginSize bytes
  std::string_view message;
};

// Splits what tag_message made; nullopt for a payload shorter than an origin
// (not from a framed host: dropped).
[[nodiscard]] std::optional<TaggedMessage> untag_message(std::string_view payload);

}  // namespace framed::pubsub
