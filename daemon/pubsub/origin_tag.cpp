#include "pubsub/origin_tag.hpp"

#include <sys/random.h>

#include <random>

namespace framed::pubsub {

Origin random_origin() {
  Origin origin{};
  // GRND_NONBLOCK: at start-up before the pool is initialised getrandom
  // would block; std::random_device then still gives distinct ids.
  if (::getrandom(origin.data(), origin.size(), GRND_NONBLOCK) == static_cast<ssize_t>(origin.size())) return origin;
  std::random_device device;
  for (char& byte : origin) byte = static_cast<char>(device() & 0xFF);
  return origin;
}

std::string tag_message(const Origin& origin, std::string_view message) {
  std::string payload;
  payload.reserve(kOriginSize + message.size());
  payload.append(origin.data(), origin.size());
  payload.append(message);
  return payload;
}

std::optional<TaggedMessage> untag_message(std::string_view payload) {
  if (payload.size() < kOriginSize) return std::nullopt;
  return TaggedMessage{payload.substr(0, kOriginSize), payload.substr(kOriginSize)};
}

}  // namespace framed::pubsub
