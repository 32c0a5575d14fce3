#pragma once
// From a decoded frame to a filled Reply: request parsing, command lookup,
// the command itself, and the counters. Shared by stream connections and
// datagram endpoints so both answer exactly alike.

#include "codec/frame_decoder.hpp"
#include "commands/command.hpp"
#include "proto/reply.hpp"
#include "proto/request.hpp"
#include "server/listener_settings.hpp"

namespace framed::server {

class Server;

// Something that receives replies later than it asked: a stream connection
// or a datagram endpoint. Registered with the server under its id.
class ReplyTarget {
 public:
  // A deferred reply, for the request route.sequence; reactor thread only.
  virtual void deliver_deferred(const commands::ReplyRoute& route, proto::Reply& reply) = 0;

 protected:
  ~ReplyTarget() = default;
};

// `header` is the parsed json header (json formats only). The request's
// views stay valid while the frame's bytes are buffered, which is until the
// reply has been encoded. Returns false when the command deferred its reply:
// `route` (requester id and sequence, filled in by the caller) then names the
// answer to wait for. `peer`: the requester's credentials, when it has them
// (a Unix stream connection), for CommandContext::peer.
bool answer_frame(Server& server, const ListenerSettings& listener, const codec::DecodeResult& frame,
                  simdjson::dom::object header, proto::Request& request, proto::Reply& reply,
                  commands::ReplyRoute route, const exec::PeerCredentials* peer = nullptr);

// Counts a command's reply (at once, or when a deferred one is delivered).
void count_outcome(Server& server, const ListenerSettings& listener, commands::CommandStats& stats,
                   const proto::Reply& reply);

// Fills reply with an error that is not a command's (bad_frame, timeout...).
void answer_error(Server& server, const ListenerSettings& listener, proto::ErrorCode code,
                  std::string_view message, proto::Reply& reply);

}  // namespace framed::server
