#pragma once
// pubsub.bridge as written in framed.toml: "redis://HOST:PORT", nothing else
// (no user, password, database, path or query). HOST is a numeric IPv4
// address, a numeric IPv6 address in brackets ("[::1]"), or `localhost`
// (taken as 127.0.0.1); PORT is a decimal 1..65535.
//
// Other host names are refused on purpose: the bridge connects from the
// reactor thread, and resolving a name there (getaddrinfo) could block it
// for as long as DNS takes, at every reconnect. A numeric address needs no
// lookup.
//
// Pure function over text (inet_pton/inet_ntop only); thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace framed::config {

struct RedisEndpoint {
  std::string host;  // numeric, canonical (inet_ntop), without brackets: what hiredis connects to
  std::uint16_t port = 0;

  // "redis://127.0.0.1:6379", "redis://[::1]:6379": logs and stats.
  [[nodiscard]] std::string url() const;
  bool operator==(const RedisEndpoint&) const = default;
};

struct RedisUrlParse {
  std::optional<RedisEndpoint> value;
  std::string error;  // when value is empty: `invalid Redis URL "...": why`
};

RedisUrlParse parse_redis_url(std::string_view text);

}  // namespace framed::config
