#pragma once
// The local publishes on their way to Redis: those waiting (Redis away or
// slow) and those sent but not yet answered. Both together are bounded, in
// bytes and in count, so that a Redis that is gone or stalled costs at most
// that much memory; a publish past either bound is refused (the bridge drops
// it and counts it). First in, first out: each publisher's order is kept.
//
// Reactor thread only.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace framed::pubsub {

struct OutgoingMessage {
  std::string channel;  // the Redis channel (prefix included)
  std::string payload;  // origin-tagged (origin_tag.hpp)
  [[nodiscard]] std::size_t size() const noexcept { return channel.size() + payload.size(); }
};

class PublishQueue {
 public:
  PublishQueue(std::size_t max_bytes, std::size_t max_messages) : max_bytes_(max_bytes), max_messages_(max_messages) {}

  // False: it would pass a bound; nothing changes.
  bool push(OutgoingMessage message);
  // The oldest waiting message, now counted as in flight until settle().
  std::optional<OutgoingMessage> take();
  // A message taken earlier (of `size` bytes) was answered, or lost with
  // its connection: it no longer counts.
  void settle(std::size_t size) noexcept;

  [[nodiscard]] std::size_t waiting() const noexcept { return waiting_.size(); }
  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

 private:
  std::size_t max_bytes_;
  std::size_t max_messages_;
  std::deque<OutgoingMessage> waiting_;
  std::size_t in_flight_ = 0;
  std::size_t bytes_ = 0;  // waiting and in flight
};

}  // namespace framed::pubsub
