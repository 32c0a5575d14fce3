#pragma once
// From a decoded frame to a filled Reply: request parsing, command lookup,
// the command itself, and the counters. Shared by stream connections and
// datagram endpoints so both answer exactly alike.

#include "codec/frame_decoder.hpp"
#include "proto/reply.hpp"
#include "proto/request.hpp"
#include "server/listener_settings.hpp"

namespace framed::server {

class Server;

// `header` is the parsed json header (json formats only). The request's
// views stay valid while the frame's bytes are buffered, which is until the
// reply has been encoded.
void answer_frame(Server& server, const ListenerSettings& listener, const codec::DecodeResult& frame,
                  simdjson::dom::object header, proto::Request& request, proto::Reply& reply);

// Fills reply with an error that is not a command's (bad_frame, timeout...).
void answer_error(Server& server, const ListenerSettings& listener, proto::ErrorCode code,
                  std::string_view message, proto::Reply& reply);

}  // namespace framed::server
