#pragma once
// What the pub/sub bridge counts (redis_bridge.hpp), for `stats` and
// /metrics: a plain value, copied out on the reactor thread.

#include <cstdint>

namespace framed::pubsub {

struct BridgeStats {
  bool connected = false;        // both connections up and the subscription confirmed
  std::uint64_t published = 0;   // local publishes Redis took (PUBLISH answered)
  std::uint64_t received = 0;    // other hosts' messages delivered here
  std::uint64_t dropped = 0;     // local publishes that never reached Redis (queue full, connection lost)
  std::uint64_t reconnects = 0;  // times the bridge came back after being connected
};

}  // namespace framed::pubsub
