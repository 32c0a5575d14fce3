#pragma once
// From a decoded frame to a filled Reply: the request parsed, its command
// found and run, and the outcome counted. One per shard, shared by every
// requester of it (stream connections and datagram endpoints alike), so
// every transport answers exactly alike.

#include <simdjson.h>

#include <memory>
#include <span>
#include <string_view>
#include <vector>

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
  auth::ClientSession* session = nullptr;  // stream connections: who the client is
};

// Latency, per command: from the reactor batch that brought the request in
// (host.now(), read once per batch) to its reply. A reply given at once is
// timed with the others of its requester's batch (Batch: one clock read when
// the requester has processed what it read), so a pipelined burst costs two
// clock reads, not two per request, and each of its requests is counted at
// the time its batch took: an upper bound within one batch. A deferred
// reply, or a streamed body's, is timed on its own when it is ready.
class Dispatcher {
 public:
  // command_stats: this shard's counters, one per registered command (by
  // RegisteredCommand::index), alive as long as the dispatcher.
  Dispatcher(commands::CommandHost& host, std::span<commands::CommandStats> command_stats)
      : host_(host),
        commands_(host.commands()),
        command_stats_(command_stats),
        batch_counts_(command_stats.size(), 0) {}

  // Brackets a requester's processing of what it read (nestable: the
  // outermost one times the batch).
  class Batch {
   public:
    explicit Batch(Dispatcher& dispatcher) noexcept : dispatcher_(dispatcher) { dispatcher_.begin_batch(); }
    ~Batch() { dispatcher_.end_batch(); }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    Dispatcher& dispatcher_;
  };

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
  // Counts a command's reply given at once (an error only; run() and
  // finish_body() count the rest).
  static void count_outcome(const Origin& origin, commands::CommandStats& stats, const proto::Reply& reply) noexcept;
  // Counts a deferred command's reply, now delivered, with its latency.
  static void count_deferred(const Origin& origin, const commands::ReplyRoute& route, const proto::Reply& reply) noexcept;
  // Fills reply with an error that is not a command's (bad_frame,
  // timeout...) and counts it.
  static void answer_error(const Origin& origin, proto::ErrorCode code, std::string_view message,
                           proto::Reply& reply);

 private:
  commands::CommandContext context(const Origin& origin, const commands::ReplyRoute& route) noexcept {
    commands::CommandContext context{host_, origin.listener, route};
    context.peer = origin.peer;
    context.session = origin.session;
    return context;
  }

  // May this client make this request (`command` null: an unknown one)?
  // False with the refusal in `reply`: not authenticated yet, past its
  // principal's rate, or files its principal may not touch.
  bool admit(const Origin& origin, const commands::RegisteredCommand* command, proto::Reply& reply);

  void begin_batch() noexcept;
  void end_batch() noexcept;
  // A reply given at once: timed with its batch, or alone outside one.
  void count_immediate(const commands::RegisteredCommand& command) noexcept;
  static void record_latency(commands::CommandStats& stats, base::TimePoint taken_at) noexcept;
  [[nodiscard]] base::TimePoint taken_at() noexcept { return batch_depth_ != 0 ? batch_started_ : host_.now(); }

  commands::CommandHost& host_;
  const commands::CommandRegistry& commands_;  // the host's, read-only once built
  std::span<commands::CommandStats> command_stats_;

  // The batch in progress: when it began, and how many replies of each
  // command (by index) it gave at once; `batch_touched_` lists the indexes
  // counted, so ending a batch costs what it used, not the registry's size.
  unsigned batch_depth_ = 0;
  base::TimePoint batch_started_{};
  std::vector<std::uint32_t> batch_counts_;
  std::vector<std::size_t> batch_touched_;
};

}  // namespace framed::pipeline
