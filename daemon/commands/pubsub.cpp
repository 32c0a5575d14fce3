// publish, subscribe, unsubscribe: channels any client on any transport
// publishes to, and json stream connections subscribe to (PROTOCOL.md
// section 4). The channel table and its fan-out are daemon/pubsub; these
// commands only read requests and answer.
//
// publish: json header `channel`, the message as body; simple mode (line,
// length, text datagrams) `publish CHANNEL MESSAGE`: the channel is the first
// word, the message everything after the one space that follows it. Reply:
// `receivers` (json), or the count as text (simple mode): this host's
// subscribers only. With a [pubsub] bridge the message also goes to the
// other hosts (forward_publish), whose subscribers are not counted.
//
// subscribe / unsubscribe: json header `channel`, json stream connections
// only (events are json frames). Reply: `channel` and `subscriptions`, how
// many channels the connection is subscribed to now. Subscribing twice, or
// unsubscribing from a channel not subscribed to, changes nothing and is ok.

#include <string>
#include <string_view>

#include "auth/permissions.hpp"
#include "commands/command.hpp"
#include "config/config.hpp"
#include "pubsub/channel_table.hpp"

namespace framed::commands {
namespace {

// A channel name is the client's: bounded, so that a subscription costs at
// most this much memory, and subscriptions per connection are bounded too.
constexpr std::size_t kMaxChannelName = 256;
constexpr std::size_t kMaxSubscriptions = 1024;

// A principal may publish to and subscribe to the channels its globs match;
// false with `reply` failed otherwise. Without a principal the listener's
// clients may use every channel.
bool may_use(const CommandContext& context, std::string_view command, std::string_view channel, proto::Reply& reply) {
  const config::Principal* principal = context.principal();
  if (principal == nullptr || auth::may_use_channel(*principal, channel)) return true;
  std::string message(command);
  message.append(": principal '").append(principal->name).append("' may not use channel ");
  message.append(quote_client_name(channel));
  reply.fail(proto::ErrorCode::forbidden, message);
  return false;
}

// The channel of a json request, or an empty view after failing `reply`.
std::string_view channel_of(const proto::Request& request, proto::Reply& reply, std::string_view command) {
  std::string_view channel;
  const auto field = request.header["channel"];
  if (field.error() == simdjson::NO_SUCH_FIELD) {
    reply.fail(proto::ErrorCode::bad_request, std::string(command) + " needs \"channel\"");
    return {};
  }
  if (field.get_string().get(channel) != simdjson::SUCCESS) {
    reply.fail(proto::ErrorCode::bad_request, std::string(command) + ": \"channel\" must be a string");
    return {};
  }
  if (channel.empty() || channel.size() > kMaxChannelName) {
    reply.fail(proto::ErrorCode::bad_request, std::string(command) + ": \"channel\" must be 1 to " +
                                                  std::to_string(kMaxChannelName) + " bytes");
    return {};
  }
  return channel;
}

void answer_receivers(proto::Reply& reply, bool simple, std::size_t receivers) {
  if (simple) {
    reply.body_storage = std::to_string(receivers);
    reply.use_storage_as_body();
  } else {
    reply.add_field("receivers", std::uint64_t{receivers});
  }
}

class Publish final : public Command {
 public:
  std::string_view name() const noexcept override { return "publish"; }
  std::string_view summary() const noexcept override {
    return "sends the body to every subscriber of header channel (simple mode: publish CHANNEL MESSAGE); reply = receivers";
  }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) override {
    const bool simple = request.mode == proto::RequestMode::simple;
    std::string_view channel;
    std::string_view message;
    if (simple) {
      const std::string_view text = request.body;
      const std::size_t space = text.find(' ');
      channel = text.substr(0, space);
      message = space == text.npos ? std::string_view() : text.substr(space + 1);
      if (channel.empty() || channel.size() > kMaxChannelName) {
        return reply.fail(proto::ErrorCode::bad_request, "usage: publish CHANNEL MESSAGE (CHANNEL: 1 to " +
                                                             std::to_string(kMaxChannelName) + " bytes, no space)");
      }
    } else {
      channel = channel_of(request, reply, "publish");
      if (channel.empty()) return;
      message = request.body;
    }
    if (!may_use(context, "publish", channel, reply)) return;
    CommandHost& host = context.host;
    // The other hosts' subscribers (the bridge); `receivers` counts this
    // host's alone.
    host.forward_publish(channel, message);
    const ReplyRoute route = context.route;
    const auto receivers = host.publish(channel, message, [&host, route, simple](std::size_t count) {
      proto::Reply later;
      answer_receivers(later, simple, count);
      host.deliver_reply(route, later);
    });
    if (receivers) return answer_receivers(reply, simple, *receivers);
    // The message has its place in every subscriber's order already: the
    // connection's next requests need not wait for the fan-out.
    [[maybe_unused]] const ReplyRoute deferred = context.defer_answer();
  }
};

class Subscribe final : public Command {
 public:
  explicit Subscribe(bool subscribing) : subscribing_(subscribing) {}
  std::string_view name() const noexcept override { return subscribing_ ? "subscribe" : "unsubscribe"; }
  std::string_view summary() const noexcept override {
    return subscribing_ ? "json stream connections: messages published to header channel arrive as events"
                        : "ends a subscription to header channel";
  }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) override {
    if (request.mode != proto::RequestMode::json) {
      return reply.fail(proto::ErrorCode::bad_request,
                        std::string(name()) + " needs the json framing (events are json frames)");
    }
    const std::string_view channel = channel_of(request, reply, name());
    if (channel.empty()) return;
    // Unsubscribing is always allowed: it can only take away.
    if (subscribing_ && !may_use(context, name(), channel, reply)) return;
    CommandHost& host = context.host;
    if (!host.publishes_are_queued()) return change(host, context.route.requester, channel, reply);
    // Several reactors: publishes reach this reactor's channels through its
    // post queue. The change takes its turn in that queue, behind every
    // publish queued before it (this connection's own among them), so a
    // subscription starts between two publishes exactly as on one reactor.
    auto later = [this, &host, route = context.route, channel = std::string(channel)] {
      proto::Reply answer;
      change(host, route.requester, channel, answer);
      host.deliver_reply(route, answer);
    };
    host.post(std::move(later));
    [[maybe_unused]] const ReplyRoute deferred = context.defer();
  }

 private:
  void change(CommandHost& host, std::uint64_t id, std::string_view channel, proto::Reply& reply) const {
    pubsub::ChannelTable& channels = host.channels();
    if (subscribing_) {
      pubsub::Subscriber* subscriber = host.subscriber(id);
      if (subscriber == nullptr) {
        return reply.fail(proto::ErrorCode::bad_request,
                          "subscribe needs a json stream connection (TCP or Unix): a datagram cannot carry events");
      }
      if (channels.subscriptions(id) >= kMaxSubscriptions) {
        return reply.fail(proto::ErrorCode::bad_request, "subscribe: a connection may hold at most " +
                                                             std::to_string(kMaxSubscriptions) + " subscriptions");
      }
      channels.subscribe(id, *subscriber, channel);
    } else {
      channels.unsubscribe(id, channel);
    }
    reply.add_field("channel", channel);
    reply.add_field("subscriptions", std::uint64_t{channels.subscriptions(id)});
  }

  bool subscribing_;
};

}  // namespace

void register_pubsub_commands(CommandRegistry& registry) {
  registry.add(std::make_unique<Publish>());
  registry.add(std::make_unique<Subscribe>(true));
  registry.add(std::make_unique<Subscribe>(false));
}

}  // namespace framed::commands
