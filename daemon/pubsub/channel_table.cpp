#include "pubsub/channel_table.hpp"

#include <algorithm>

#include "buffer/byte_buffer.hpp"
#include "codec/reply_encoder.hpp"
#include "proto/json_writer.hpp"

namespace framed::pubsub {
namespace {

bool same_format(const codec::WireFormat& a, const codec::WireFormat& b) noexcept {
  return a.framing == b.framing && a.payload == b.payload && a.byte_order == b.byte_order;
}

}  // namespace

ChannelTable::~ChannelTable() { *alive_ = false; }

bool ChannelTable::subscribe(std::uint64_t id, Subscriber& subscriber, std::string_view channel) {
  Entry& entry = subscribers_[id];
  entry.subscriber = &subscriber;
  if (std::find(entry.channels.begin(), entry.channels.end(), channel) != entry.channels.end()) return false;
  entry.channels.emplace_back(channel);
  auto it = channels_.find(channel);
  if (it == channels_.end()) it = channels_.emplace(std::string(channel), std::vector<std::uint64_t>{}).first;
  it->second.push_back(id);
  return true;
}

bool ChannelTable::unsubscribe(std::uint64_t id, std::string_view channel) {
  const auto entry = subscribers_.find(id);
  if (entry == subscribers_.end()) return false;
  auto& names = entry->second.channels;
  const auto name = std::find(names.begin(), names.end(), channel);
  if (name == names.end()) return false;
  names.erase(name);
  if (names.empty()) subscribers_.erase(entry);
  if (const auto it = channels_.find(channel); it != channels_.end()) {
    std::erase(it->second, id);
    if (it->second.empty()) channels_.erase(it);
  }
  return true;
}

void ChannelTable::remove(std::uint64_t id) {
  const auto entry = subscribers_.find(id);
  if (entry == subscribers_.end()) return;
  for (const std::string& channel : entry->second.channels) {
    if (const auto it = channels_.find(channel); it != channels_.end()) {
      std::erase(it->second, id);
      if (it->second.empty()) channels_.erase(it);
    }
  }
  subscribers_.erase(entry);
}

std::size_t ChannelTable::subscriptions(std::uint64_t id) const noexcept {
  const auto entry = subscribers_.find(id);
  return entry == subscribers_.end() ? 0 : entry->second.channels.size();
}

std::optional<std::size_t> ChannelTable::publish(std::string_view channel, std::string_view message, Done done) {
  const auto it = channels_.find(channel);
  const std::vector<std::uint64_t>* targets = it == channels_.end() ? nullptr : &it->second;
  if (fan_outs_.empty() && (targets == nullptr || targets->size() <= kFanOutBatch)) {
    FanOut fan_out;
    fan_out.channel.assign(channel);
    // A snapshot of the subscribers: one that leaves (or is closed by a
    // push) meanwhile is looked up again, and skipped, when its turn comes.
    if (targets != nullptr) fan_out.targets = *targets;
    fan_out.messages.push_back(Message{std::string(message), {}, 0, {}});
    deliver(fan_out, fan_out.targets.size());
    return fan_out.messages.front().receivers;
  }
  if (FanOut* last = joinable(channel, targets)) {
    last->messages.push_back(Message{std::string(message), {}, 0, std::move(done)});
    return std::nullopt;
  }
  FanOut fan_out;
  fan_out.channel.assign(channel);
  if (targets != nullptr) fan_out.targets = *targets;
  fan_out.messages.push_back(Message{std::string(message), {}, 0, std::move(done)});
  fan_outs_.push_back(std::move(fan_out));
  schedule();
  return std::nullopt;
}

ChannelTable::FanOut* ChannelTable::joinable(std::string_view channel, const std::vector<std::uint64_t>* targets) {
  if (fan_outs_.empty()) return nullptr;
  FanOut& last = fan_outs_.back();
  // Started: the subscribers before `next` would miss the joined message.
  if (last.next != 0 || last.messages.size() >= kMaxJoinedMessages || last.channel != channel) return nullptr;
  // The same subscribers, in the same order: who subscribed or left since
  // makes a fan-out of its own.
  const bool same = targets == nullptr ? last.targets.empty() : last.targets == *targets;
  return same ? &last : nullptr;
}

bool ChannelTable::deliver(FanOut& fan_out, std::size_t budget) {
  const std::size_t end = std::min(fan_out.targets.size(), fan_out.next + budget);
  for (; fan_out.next < end; ++fan_out.next) {
    const auto entry = subscribers_.find(fan_out.targets[fan_out.next]);
    if (entry == subscribers_.end()) continue;
    // push_event may close the subscriber (and so remove it from this
    // table): nothing of `entry` is used after it. The subscriber object
    // itself is destroyed later (after this loop iteration), and once it
    // refused a message it takes no later one.
    Subscriber& subscriber = *entry->second.subscriber;
    const codec::WireFormat format = subscriber.event_format();
    for (Message& message : fan_out.messages) {
      if (!subscriber.push_event(frame_for(fan_out.channel, message, format))) break;
      ++message.receivers;
    }
  }
  return fan_out.next == fan_out.targets.size();
}

const pipeline::SharedFrame& ChannelTable::frame_for(std::string_view channel, Message& message,
                                                     codec::WireFormat format) {
  for (const auto& [encoded_format, frame] : message.frames) {
    if (same_format(encoded_format, format)) return frame;
  }
  std::string fields = ",\"event\":\"message\",\"channel\":";
  proto::append_json_string(fields, channel);
  buffer::ByteBuffer out(fields.size() + message.text.size() + 64);
  codec::ReplyEncoder(format).encode_event(fields, message.text, out);
  message.frames.emplace_back(format, std::make_shared<const std::string>(out.readable()));
  return message.frames.back().second;
}

void ChannelTable::schedule() {
  if (scheduled_ || fan_outs_.empty()) return;
  scheduled_ = true;
  // post, not defer: deferred functions run before the loop polls again,
  // posted ones after, so I/O is served between batches.
  reactor_.post([this, alive = alive_] {
    if (*alive) run_batch();
  });
}

void ChannelTable::run_batch() {
  scheduled_ = false;
  std::size_t budget = kFanOutBatch;
  while (budget > 0 && !fan_outs_.empty()) {
    FanOut& front = fan_outs_.front();
    const std::size_t before = front.next;
    const bool finished = deliver(front, budget);
    budget -= std::min(budget, std::max<std::size_t>(front.next - before, 1));
    if (!finished) break;
    FanOut done = std::move(front);
    fan_outs_.pop_front();
    for (Message& message : done.messages) message.done(message.receivers);
  }
  schedule();
}

}  // namespace framed::pubsub
