// The pub/sub bridge's pure parts: pubsub.bridge's URL, the origin tag that
// keeps a host from delivering its own message twice, the bounded queue of
// publishes waiting for Redis, and the PSUBSCRIBE pattern of a prefix.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "config/config.hpp"
#include "config/redis_url.hpp"
#include "pubsub/origin_tag.hpp"
#include "pubsub/publish_queue.hpp"
#include "pubsub/redis_bridge.hpp"

using framed::config::parse_redis_url;

TEST_CASE("redis URLs: numeric hosts and localhost, a port of 1 to 65535", "[bridge][config]") {
  const auto v4 = parse_redis_url("redis://127.0.0.1:6379");
  REQUIRE(v4.value);
  CHECK(v4.value->host == "127.0.0.1");
  CHECK(v4.value->port == 6379);
  CHECK(v4.value->url() == "redis://127.0.0.1:6379");

  const auto v6 = parse_redis_url("redis://[0:0::1]:1");
  REQUIRE(v6.value);
  CHECK(v6.value->host == "::1");
  CHECK(v6.value->port == 1);
  CHECK(v6.value->url() == "redis://[::1]:1");

  const auto local = parse_redis_url("redis://localhost:65535");
  REQUIRE(local.value);
  CHECK(local.value->host == "127.0.0.1");
  CHECK(local.value->port == 65535);
}

TEST_CASE("redis URLs: every other form is refused, saying why", "[bridge][config]") {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"", "the scheme must be redis://"},
      {"127.0.0.1:6379", "the scheme must be redis://"},
      {"rediss://127.0.0.1:6379", "the scheme must be redis://"},
      {"REDIS://127.0.0.1:6379", "the scheme must be redis://"},
      {"http://127.0.0.1:6379", "the scheme must be redis://"},
      {"redis://", "missing \":PORT\""},
      {"redis://127.0.0.1", "missing \":PORT\""},
      {"redis://127.0.0.1:", "the port must be a number"},
      {"redis://127.0.0.1:0", "from 1 to 65535"},
      {"redis://127.0.0.1:65536", "the port must be a number"},
      {"redis://127.0.0.1:+80", "the port must be a number"},
      {"redis://127.0.0.1:80x", "the port must be a number"},
      {"redis://127.0.0.1:6379/0", "nothing may follow the port"},
      {"redis://127.0.0.1:6379/", "nothing may follow the port"},
      {"redis://127.0.0.1:6379?db=1", "nothing may follow the port"},
      {"redis://127.0.0.1:6379#x", "nothing may follow the port"},
      {"redis://user:pw@127.0.0.1:6379", "user or password"},
      {"redis://redis-host:6379", "a name would need a DNS lookup"},
      {"redis://LOCALHOST:6379", "a name would need a DNS lookup"},
      {"redis://localhost", "missing \":PORT\""},
      {"redis://:6379", "missing host"},
      {"redis://::1:6379", "in brackets"},
      {"redis://[::1:6379", "missing ']'"},
      {"redis://[::1]", "missing \":PORT\""},
      {"redis://[127.0.0.1]:6379", "not a numeric IPv6 address"},
      {"redis://256.0.0.1:6379", "numeric IPv4"},
  };
  for (const auto& [text, why] : cases) {
    INFO(text);
    const auto parsed = parse_redis_url(text);
    CHECK_FALSE(parsed.value);
    CHECK_THAT(parsed.error, Catch::Contains("invalid Redis URL \"" + std::string(text) + "\""));
    CHECK_THAT(parsed.error, Catch::Contains(std::string(why)));
  }
}

TEST_CASE("[pubsub] in a config file: off by default, errors with line and column", "[bridge][config]") {
  const auto defaults = framed::config::parse_config("", "t.toml");
  REQUIRE(defaults.config);
  CHECK_FALSE(defaults.config->pubsub.bridge);
  CHECK(defaults.config->pubsub.bridge_prefix == "framed:");

  const auto set = framed::config::parse_config("[pubsub]\nbridge = \"redis://127.0.0.1:7000\"\nbridge_prefix = \"a:\"\n",
                                                "t.toml");
  REQUIRE(set.config);
  REQUIRE(set.config->pubsub.bridge);
  CHECK(set.config->pubsub.bridge->port == 7000);
  CHECK(set.config->pubsub.bridge_prefix == "a:");

  const auto bad = framed::config::parse_config("[pubsub]\nbridge = \"redis://127.0.0.1:6379/1\"\n", "t.toml");
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].to_string() ==
        "t.toml:2:10: pubsub.bridge: invalid Redis URL \"redis://127.0.0.1:6379/1\": nothing may follow the port "
        "(no /DB, path or query: the bridge only publishes)");

  const auto unknown = framed::config::parse_config("[pubsub]\nbrige = \"redis://127.0.0.1:6379\"\n", "t.toml");
  REQUIRE(unknown.errors.size() == 1);
  CHECK(unknown.errors[0].line == 2);
  const auto empty_prefix = framed::config::parse_config("[pubsub]\nbridge_prefix = \"\"\n", "t.toml");
  CHECK(empty_prefix.errors.size() == 1);
}

TEST_CASE("origin tags: any message, binary included, comes back whole with its origin", "[bridge]") {
  using namespace framed::pubsub;
  Origin origin{};
  for (std::size_t i = 0; i < origin.size(); ++i) origin[i] = static_cast<char>(i * 37);
  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  binary += std::string("\0\n\r\0", 4);

  // Every split of the message (every prefix of it) is its own message.
  for (std::size_t length = 0; length <= binary.size(); ++length) {
    const std::string_view message = std::string_view(binary).substr(0, length);
    const std::string payload = tag_message(origin, message);
    CHECK(payload.size() == kOriginSize + length);
    const auto tagged = untag_message(payload);
    REQUIRE(tagged);
    CHECK(tagged->origin == std::string_view(origin.data(), origin.size()));
    CHECK(tagged->message == message);
  }
  // Shorter than an origin: not from a framed host.
  for (std::size_t length = 0; length < kOriginSize; ++length) {
    CHECK_FALSE(untag_message(std::string(length, 'x')));
  }
  // Two processes draw different origins.
  CHECK(random_origin() != random_origin());
}

TEST_CASE("the publish queue is bounded in bytes and in count, in flight included", "[bridge]") {
  using namespace framed::pubsub;
  PublishQueue queue(100, 3);
  CHECK(queue.push({"c", std::string(49, 'a')}));   // 50 bytes
  CHECK(queue.push({"c", std::string(39, 'b')}));   // 40 bytes: 90
  CHECK_FALSE(queue.push({"c", std::string(10, 'x')}));  // 101 > 100
  CHECK(queue.push({"c", std::string(9, 'c')}));    // exactly 100
  CHECK(queue.bytes() == 100);
  CHECK_FALSE(queue.push({"", ""}));  // the count: 3 already

  // Taken in order; in flight still counts until settled.
  auto first = queue.take();
  REQUIRE(first);
  CHECK(first->payload[0] == 'a');
  CHECK(queue.waiting() == 2);
  CHECK(queue.in_flight() == 1);
  CHECK(queue.bytes() == 100);
  CHECK_FALSE(queue.push({"c", ""}));
  queue.settle(first->size());
  CHECK(queue.bytes() == 50);
  CHECK(queue.push({"c", std::string(49, 'd')}));
  CHECK_FALSE(queue.push({"c", ""}));

  std::string order;
  while (auto next = queue.take()) {
    order += next->payload[0];
    queue.settle(next->size());
  }
  CHECK(order == "bcd");
  CHECK(queue.bytes() == 0);
  CHECK(queue.in_flight() == 0);
  CHECK_FALSE(queue.take());
}

TEST_CASE("the PSUBSCRIBE pattern matches the prefix literally", "[bridge]") {
  using framed::pubsub::RedisBridge;
  CHECK(RedisBridge::pattern_for("framed:") == "framed:*");
  CHECK(RedisBridge::pattern_for("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\*");
}
