#pragma once
// The channels of one shard: who is subscribed to what, and the fan-out of a
// publish to them (PROTOCOL.md section 4, pub/sub).
//
// A message is encoded once per wire format among its receivers (in practice
// once: only json stream connections subscribe) into a shared, immutable
// frame; every subscriber's pipeline queues that same buffer.
//
// A fan-out of up to kFanOutBatch subscribers is done at once. A larger one
// is spread over loop iterations (Reactor::post, so I/O is served in
// between), kFanOutBatch subscribers per turn; every publish on this shard
// then queues behind the fan-outs in progress, so each subscriber gets the
// messages of a channel in publish order. The publisher's reply waits for
// its fan-out (its `receivers` is only known then), so a publisher's pending
// replies (max_pending_replies) bound the fan-out work it can queue.
//
// A publish queued right behind another one to the same channel and the
// same subscribers, not started yet, joins it (up to kMaxJoinedMessages):
// each subscriber is then visited once for all of them and takes them in
// publish order, and its connection writes them with one send (events are
// flushed once per loop iteration). Each message keeps its own `receivers`
// and its own reply. Only the last queued fan-out is joined, so publishes
// to other channels in between keep their place too.
//
// Several reactors: each shard keeps its own table of its own subscribers
// (subscribers are connections, which live on one reactor). A publish would
// encode its frame once, fan it out locally, and post the same SharedFrame
// (immutable; its reference count is atomic) to every other shard's table
// through that shard's Reactor::post; each answers its receivers count back
// to the publishing shard, which answers the publisher once every shard has.
// Nothing in this class is shared between threads: only frames cross.
//
// Reactor thread only.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "codec/framing.hpp"
#include "pipeline/request_pipeline.hpp"
#include "reactor/reactor.hpp"

namespace framed::pubsub {

// A connection that may subscribe, as the table sees it.
class Subscriber {
 public:
  [[nodiscard]] virtual codec::WireFormat event_format() const noexcept = 0;
  // Queues one event. False: the subscriber is too slow (it has been told
  // and is closing) and takes nothing more.
  // The frame is copied (a reference count) only when it has to wait.
  virtual bool push_event(const pipeline::SharedFrame& frame) = 0;

 protected:
  ~Subscriber() = default;
};

class ChannelTable {
 public:
  // Subscribers served at once, or per loop iteration of a larger fan-out.
  static constexpr std::size_t kFanOutBatch = 1024;
  // Messages a queued fan-out carries at most (so a turn pushes at most
  // kFanOutBatch * kMaxJoinedMessages events).
  static constexpr std::size_t kMaxJoinedMessages = 32;

  explicit ChannelTable(reactor::Reactor& reactor) : reactor_(reactor) {}
  ~ChannelTable();

  ChannelTable(const ChannelTable&) = delete;
  ChannelTable& operator=(const ChannelTable&) = delete;

  // False: `id` was subscribed to `channel` already (nothing changes).
  bool subscribe(std::uint64_t id, Subscriber& subscriber, std::string_view channel);
  // False: `id` was not subscribed to `channel`.
  bool unsubscribe(std::uint64_t id, std::string_view channel);
  // The subscriber has gone (its connection closed): every subscription.
  void remove(std::uint64_t id);
  // How many channels `id` is subscribed to.
  [[nodiscard]] std::size_t subscriptions(std::uint64_t id) const noexcept;

  // Offers `message` to every subscriber of `channel`. A small fan-out is
  // done at once: returns how many subscribers took it, and `done` is not
  // called. A larger one returns nullopt and calls `done` with that count
  // from a later loop iteration, once every subscriber was offered it.
  using Done = std::function<void(std::size_t receivers)>;
  std::optional<std::size_t> publish(std::string_view channel, std::string_view message, Done done);

 private:
  struct Entry {
    Subscriber* subscriber = nullptr;
    std::vector<std::string> channels;
  };
  // One published message: its frames (one per wire format among its
  // receivers), how many took it, and who is answered then.
  struct Message {
    std::string text;
    std::vector<std::pair<codec::WireFormat, pipeline::SharedFrame>> frames;
    std::size_t receivers = 0;
    Done done;
  };
  // Consecutive publishes to one channel on their way to its subscribers
  // (those subscribed when the first was published), in publish order.
  struct FanOut {
    std::string channel;
    std::vector<std::uint64_t> targets;
    std::size_t next = 0;
    std::vector<Message> messages;
  };

  // Offers the messages to up to `budget` more targets; true when done.
  bool deliver(FanOut& fan_out, std::size_t budget);
  static const pipeline::SharedFrame& frame_for(std::string_view channel, Message& message,
                                                codec::WireFormat format);
  // The last queued fan-out, when `message` to `channel` may join it.
  FanOut* joinable(std::string_view channel, const std::vector<std::uint64_t>* targets);
  void schedule();
  void run_batch();

  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
  };

  reactor::Reactor& reactor_;
  std::unordered_map<std::string, std::vector<std::uint64_t>, StringHash, std::equal_to<>> channels_;
  std::unordered_map<std::uint64_t, Entry> subscribers_;
  std::deque<FanOut> fan_outs_;
  bool scheduled_ = false;
  // Tells a posted batch that the table it was posted for is gone (the
  // shard is destroyed after its loop ends, with posts possibly unrun).
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace framed::pubsub
