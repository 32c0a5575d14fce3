#pragma once
// From a decoded frame to a filled Reply: the request parsed, its command
// found and run, and the outcome counted. One per shard, shared by every
// requester of it (stream connections and datagram endpoints alike), so
// every transport answers exactly alike.

#include <simdjson.h>

#include <memory>
#include <span>
#include <string_view>

#include "codec/framing.hpp"
#include "commands/command.hpp"
#include "proto/reply.hpp"
#include "proto/request.hpp"
#include "server/listener_settings.hpp"

namespace framed::pipeline {

// Who asked: the listener the request came through, and the peer's
// credentials where it has them (a Unix stream connection).
struct Origin {
  const server::ListenerSettings& listener;
  const exec::PeerCredentials* peer = nullptr;
};

class Dispatcher {
 public:
  // command_stats: this shard's counters, one per registered command (by
  // RegisteredCommand::index), alive as long as the dispatcher.
  Dispatcher(commands::CommandHost& host, std::span<commands::CommandStats> command_stats) noexcept
      : host_(host), commands_(host.commands()), command_stats_(command_stats) {}

  // Parses the request out of `header` (json framings) or `payload` (simple
  // mode) and finds its command. Null: `reply` holds the error
  // (bad_request, unknown_command), already counted. The request's views
  // point into the frame and the parser: valid until the next decode.
  const commands::RegisteredCommand* prepare(const Origin& origin, simdjson::dom::object header,
                                             std::string_view payload, proto::Request& request,
                                             proto::Reply& reply);

  // How run() left a request: answered in `reply`; deferred (its answer
  // arrives through the host, by route, and the requester waits for it
  // before its next request: CommandContext::defer); or deferred with its
  // effect taken, so the requester goes on (CommandContext::defer_answer).
  enum class RunOutcome { answered, deferred, answer_pending };

  // Runs the command. `route.stats` is filled in here.
  RunOutcome run(const Origin& origin, const commands::RegisteredCommand& command, const proto::Request& request,
                 proto::Reply& reply, commands::ReplyRoute& route);

  // A streaming command's sink for this request's body, or null with the
  // error in `reply`.
  std::unique_ptr<commands::BodySink> open_body(const Origin& origin, const commands::RegisteredCommand& command,
                                                const proto::Request& request, proto::Reply& reply,
                                                commands::ReplyRoute& route);
  // The body is complete: the sink answers. False: it deferred.
  bool finish_body(const Origin& origin, commands::BodySink& sink, proto::Reply& reply,
                   const commands::ReplyRoute& route);

  [[nodiscard]] const commands::CommandRegistry& commands() const noexcept { return commands_; }

  // Counts one decoded request.
  static void count_frame(const Origin& origin) noexcept { ++origin.listener.stats->frames_in; }
  // Counts a command's reply (at once, or when a deferred one is delivered).
  static void count_outcome(const Origin& origin, commands::CommandStats& stats, const proto::Reply& reply) noexcept;
  // Fills reply with an error that is not a command's (bad_frame,
  // timeout...) and counts it.
  static void answer_error(const Origin& origin, proto::ErrorCode code, std::string_view message,
                           proto::Reply& reply);

 private:
  commands::CommandContext context(const Origin& origin, const commands::ReplyRoute& route) noexcept {
    commands::CommandContext context{host_, origin.listener, route};
    context.peer = origin.peer;
    return context;
  }

  commands::CommandHost& host_;
  const commands::CommandRegistry& commands_;  // the host's, read-only once built
  std::span<commands::CommandStats> command_stats_;
};

}  // namespace framed::pipeline
