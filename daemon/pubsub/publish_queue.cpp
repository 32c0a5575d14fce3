#include "pubsub/publish_queue.hpp"

#include <utility>

namespace framed::pubsub {

bool PublishQueue::push(OutgoingMessage message) {
  const std::size_t size = message.size();
  if (waiting_.size() + in_flight_ >= max_messages_ || size > max_bytes_ - bytes_) return false;
  bytes_ += size;
  waiting_.push_back(std::move(message));
  return true;
}

std::optional<OutgoingMessage> PublishQueue::take() {
  if (waiting_.empty()) return std::nullopt;
  OutgoingMessage message = std::move(waiting_.front());
  waiting_.pop_front();
  ++in_flight_;
  return message;
}

void PublishQueue::settle(std::size_t size) noexcept {
  if (in_flight_ > 0) --in_flight_;
  bytes_ -= size < bytes_ ? size : bytes_;
}

}  // namespace framed::pubsub
