#include "pubsub/redis_bridge.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <new>
#include <utility>

namespace framed::pubsub {
namespace {

// A reply's element as bytes (binary-safe: hiredis keeps the length).
std::string_view text_of(const redisReply* reply) {
  if (reply == nullptr || reply->str == nullptr) return {};
  return {reply->str, reply->len};
}

}  // namespace

RedisBridge::RedisBridge(reactor::Reactor& reactor, BridgeConfig config, OnMessage on_message)
    : reactor_(reactor),
      config_(std::move(config)),
      on_message_(std::move(on_message)),
      subscriber_{RedisConnection(reactor, {[this] { on_subscriber_up(); },
                                            [this](const std::string& why) { on_link_lost(subscriber_, why); }})},
      publisher_{RedisConnection(reactor, {[this] { on_publisher_up(); },
                                           [this](const std::string& why) { on_link_lost(publisher_, why); }})} {}

RedisBridge::~RedisBridge() { stop(); }

std::string RedisBridge::pattern_for(std::string_view prefix) {
  std::string pattern;
  for (const char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') pattern += '\\';
    pattern += c;
  }
  pattern += '*';
  return pattern;
}

void RedisBridge::start() {
  if (started_ || stopped_) return;
  started_ = true;
  SPDLOG_INFO("pubsub bridge: connecting to {} (channels prefixed \"{}\")", config_.endpoint.url(), config_.prefix);
  connect(subscriber_);
  connect(publisher_);
}

void RedisBridge::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (Link* link : {&subscriber_, &publisher_}) {
    if (link->retry_timer != 0) reactor_.cancel_timer(link->retry_timer);
    link->retry_timer = 0;
    link->connection.close();
  }
  subscribed_ = false;
  stats_.connected = false;
}

BridgeStats RedisBridge::stats() const noexcept { return stats_; }

void RedisBridge::connect(Link& link) {
  link.retry_timer = 0;
  if (stopped_) return;
  link.connection.connect(config_.endpoint, kConnectTimeout);
}

void RedisBridge::on_link_lost(Link& link, const std::string& why) {
  if (stopped_) return;
  if (&link == &subscriber_) subscribed_ = false;
  ++link.failures;
  update_connected(why);
  if (!ever_connected_ && !outage_logged_) {
    outage_logged_ = true;
    SPDLOG_WARN("pubsub bridge: cannot reach Redis at {}: {}; publishes stay on this host, retrying",
                config_.endpoint.url(), why);
  }
  SPDLOG_DEBUG("pubsub bridge: {} connection attempt {} failed: {}; next in {} ms",
               &link == &subscriber_ ? "subscriber" : "publisher", link.failures, why, link.retry_delay.count());
  link.retry_timer = reactor_.add_timer(reactor_.now() + link.retry_delay, [this, &link] { connect(link); });
  link.retry_delay = std::min(link.retry_delay * 2, kMaxRetryDelay);
}

void RedisBridge::on_subscriber_up() {
  subscriber_.retry_delay = kFirstRetryDelay;
  subscriber_.failures = 0;
  const std::string pattern = pattern_for(config_.prefix);
  std::array<const char*, 2> argv{"PSUBSCRIBE", pattern.c_str()};
  const std::array<std::size_t, 2> lengths{10, pattern.size()};
  redisAsyncCommandArgv(subscriber_.connection.context(), &RedisBridge::on_subscription_reply, this,
                        static_cast<int>(argv.size()), argv.data(), lengths.data());
}

void RedisBridge::on_publisher_up() {
  publisher_.retry_delay = kFirstRetryDelay;
  publisher_.failures = 0;
  update_connected({});
  pump();
}

void RedisBridge::update_connected(const std::string& why) {
  const bool now = !stopped_ && publisher_.connection.connected() && subscribed_;
  if (now == stats_.connected) return;
  stats_.connected = now;
  if (now) {
    if (ever_connected_) {
      ++stats_.reconnects;
      SPDLOG_INFO("pubsub bridge: connected to Redis at {} again", config_.endpoint.url());
    } else {
      SPDLOG_INFO("pubsub bridge: connected to Redis at {}", config_.endpoint.url());
    }
    ever_connected_ = true;
    outage_logged_ = false;
    drop_logged_ = false;
    return;
  }
  SPDLOG_WARN("pubsub bridge: lost Redis at {}: {}; publishes stay on this host until it is back (retrying)",
              config_.endpoint.url(), why.empty() ? std::string("connection closed") : why);
}

void RedisBridge::forward(std::string_view channel, std::string_view message) {
  if (!started_ || stopped_) return;
  OutgoingMessage outgoing{config_.prefix + std::string(channel), tag_message(origin_, message)};
  if (!queue_.push(std::move(outgoing))) {
    ++stats_.dropped;
    if (!drop_logged_) {
      drop_logged_ = true;
      SPDLOG_WARN("pubsub bridge: {} messages ({} bytes) wait for Redis at {}: dropping publishes for other hosts "
                  "(counted in stats) until it catches up",
                  queue_.waiting() + queue_.in_flight(), queue_.bytes(), config_.endpoint.url());
    }
    return;
  }
  pump();
}

void RedisBridge::pump() {
  redisAsyncContext* context = publisher_.connection.context();
  while (context != nullptr && queue_.in_flight() < kMaxInFlight) {
    std::optional<OutgoingMessage> message = queue_.take();
    if (!message) return;
    std::array<const char*, 3> argv{"PUBLISH", message->channel.data(), message->payload.data()};
    const std::array<std::size_t, 3> lengths{7, message->channel.size(), message->payload.size()};
    if (redisAsyncCommandArgv(context, &RedisBridge::on_publish_reply, this, static_cast<int>(argv.size()),
                              argv.data(), lengths.data()) != REDIS_OK) {
      // The context is disconnecting: the message is lost with it.
      queue_.settle(message->size());
      ++stats_.dropped;
      return;
    }
    in_flight_sizes_.push_back(message->size());
  }
  if (queue_.waiting() == 0 && queue_.in_flight() == 0) drop_logged_ = false;
}

// hiredis calls back from C: nothing may unwind through it. A failed
// allocation costs the message at hand (counted), never the process.
void RedisBridge::on_publish_reply(redisAsyncContext* /*context*/, void* reply, void* self) try {
  auto* bridge = static_cast<RedisBridge*>(self);
  std::size_t size = 0;
  if (!bridge->in_flight_sizes_.empty()) {
    size = bridge->in_flight_sizes_.front();
    bridge->in_flight_sizes_.pop_front();
  }
  bridge->queue_.settle(size);
  const auto* answer = static_cast<const redisReply*>(reply);
  // Null: the connection ended before Redis answered (it may or may not
  // have taken the message; counted as dropped, as not confirmed).
  if (answer == nullptr || answer->type == REDIS_REPLY_ERROR) {
    ++bridge->stats_.dropped;
    return;
  }
  ++bridge->stats_.published;
  if (!bridge->stopped_) bridge->pump();
} catch (const std::bad_alloc&) {
  ++static_cast<RedisBridge*>(self)->stats_.dropped;
}

void RedisBridge::on_subscription_reply(redisAsyncContext* /*context*/, void* reply, void* self) try {
  auto* bridge = static_cast<RedisBridge*>(self);
  const auto* answer = static_cast<const redisReply*>(reply);
  if (answer == nullptr || bridge->stopped_) return;  // the connection is being freed
  if (answer->type != REDIS_REPLY_ARRAY || answer->elements < 3) return;
  const std::string_view kind = text_of(answer->element[0]);
  if (kind == "psubscribe") {
    bridge->subscribed_ = true;
    bridge->update_connected({});
  } else if (kind == "pmessage" && answer->elements >= 4) {
    bridge->on_pmessage(text_of(answer->element[2]), text_of(answer->element[3]));
  }
} catch (const std::bad_alloc&) {
  // The message is lost for this host's subscribers; the connection goes on.
  SPDLOG_WARN("pubsub bridge: out of memory delivering a message from Redis: dropped");
}

void RedisBridge::on_pmessage(std::string_view redis_channel, std::string_view payload) {
  if (!redis_channel.starts_with(config_.prefix) || redis_channel.size() == config_.prefix.size()) return;
  const std::optional<TaggedMessage> tagged = untag_message(payload);
  // Not from a framed host (too short for an origin), or our own publish
  // coming back: delivered here already.
  if (!tagged) return;
  if (std::equal(origin_.begin(), origin_.end(), tagged->origin.begin(), tagged->origin.end())) return;
  ++stats_.received;
  on_message_(redis_channel.substr(config_.prefix.size()), tagged->message);
}

}  // namespace framed::pubsub
