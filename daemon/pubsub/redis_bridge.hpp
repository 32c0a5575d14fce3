#pragma once
// The pub/sub bridge: publishes on this host reach the subscribers of every
// framed host bridged to the same Redis, and theirs reach ours, each message
// once (docs/pubsub.md, "Across hosts").
//
// Two connections to Redis (redis_connection.hpp): one in subscriber mode,
// PSUBSCRIBE <prefix>*, whose messages are handed to `on_message` (channel
// without the prefix); one for PUBLISH <prefix><channel>, fed by forward().
// Every message carries this process's random origin (origin_tag.hpp), and
// one that comes back with it is dropped: this host delivered it already,
// at publish time.
//
// Redis away or slow: forward() never waits. Its messages queue, bounded
// (kMaxQueuedBytes, kMaxQueuedMessages, counting those sent and not yet
// answered), and past that are dropped and counted. Each connection
// retries with a back-off (kFirstRetryDelay doubling to kMaxRetryDelay);
// the log says when the bridge goes down and comes back, once each, not
// at every retry. Redis's pub/sub keeps nothing: what other hosts publish
// while our subscription is down is not seen here.
//
// Reactor thread only. One bridge per reactor (its messages are handed to
// that reactor's channel table).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

#include "config/redis_url.hpp"
#include "pubsub/bridge_stats.hpp"
#include "pubsub/origin_tag.hpp"
#include "pubsub/publish_queue.hpp"
#include "pubsub/redis_connection.hpp"
#include "reactor/reactor.hpp"

struct redisAsyncContext;

namespace framed::pubsub {

struct BridgeConfig {
  config::RedisEndpoint endpoint;
  std::string prefix = "framed:";  // Redis channel = prefix + channel
};

class RedisBridge {
 public:
  // A daemon's pending memory for Redis stays this small whatever Redis
  // does: the size of a subscriber's default event backlog
  // (limits.max_event_backlog), and a count that bounds the bookkeeping of
  // many tiny messages.
  static constexpr std::size_t kMaxQueuedBytes = 8 << 20;
  static constexpr std::size_t kMaxQueuedMessages = 16384;
  // PUBLISHes handed to hiredis before their answers: enough to keep a
  // loopback or LAN round trip busy, few enough that hiredis's own output
  // buffer stays small.
  static constexpr std::size_t kMaxInFlight = 1024;
  static constexpr std::chrono::milliseconds kFirstRetryDelay{100};
  static constexpr std::chrono::milliseconds kMaxRetryDelay{5000};
  // A connect that neither succeeds nor fails (a host that drops SYNs).
  static constexpr std::chrono::milliseconds kConnectTimeout{2000};

  using OnMessage = std::function<void(std::string_view channel, std::string_view message)>;

  RedisBridge(reactor::Reactor& reactor, BridgeConfig config, OnMessage on_message);
  ~RedisBridge();

  RedisBridge(const RedisBridge&) = delete;
  RedisBridge& operator=(const RedisBridge&) = delete;

  // Connects both connections (and keeps reconnecting until stop()).
  void start();
  // A local publish, for the other hosts. Never blocks.
  void forward(std::string_view channel, std::string_view message);
  // Closes both connections; forward() drops nothing and does nothing after.
  void stop();
  [[nodiscard]] BridgeStats stats() const noexcept;

  // The PSUBSCRIBE pattern for `prefix`: Redis's glob characters escaped,
  // then '*' (public for the tests).
  [[nodiscard]] static std::string pattern_for(std::string_view prefix);

 private:
  // One of the two connections, with its retry schedule.
  struct Link {
    RedisConnection connection;
    std::chrono::milliseconds retry_delay = kFirstRetryDelay;
    reactor::TimerId retry_timer = 0;
    std::uint64_t failures = 0;  // attempts failed in a row (debug log)
  };

  void connect(Link& link);
  void on_link_lost(Link& link, const std::string& why);
  void on_subscriber_up();
  void on_publisher_up();
  // Hands waiting messages to hiredis while the publisher is up and fewer
  // than kMaxInFlight are unanswered.
  void pump();
  void update_connected(const std::string& why);

  static void on_subscription_reply(redisAsyncContext* context, void* reply, void* self);
  static void on_publish_reply(redisAsyncContext* context, void* reply, void* self);
  void on_pmessage(std::string_view redis_channel, std::string_view payload);

  reactor::Reactor& reactor_;
  BridgeConfig config_;
  OnMessage on_message_;
  Origin origin_ = random_origin();
  PublishQueue queue_{kMaxQueuedBytes, kMaxQueuedMessages};
  // The sizes of the PUBLISHes in flight, in send order: Redis answers in
  // that order.
  std::deque<std::size_t> in_flight_sizes_;
  BridgeStats stats_;
  bool started_ = false;
  bool stopped_ = false;
  bool subscribed_ = false;       // PSUBSCRIBE confirmed on the current subscriber connection
  bool ever_connected_ = false;
  bool drop_logged_ = false;      // one "dropping" line per outage
  bool outage_logged_ = false;    // one "cannot reach" line per outage
  Link subscriber_;
  Link publisher_;
};

}  // namespace framed::pubsub
