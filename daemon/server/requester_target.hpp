#pragma once
// A requester that is answered later than it asked (a stream connection, a
// datagram endpoint), registered with its shard under its id so that a
// deferred reply or a resumed body finds it — or finds it gone.

#include "commands/command.hpp"
#include "proto/reply.hpp"

namespace framed::server {

class RequesterTarget {
 public:
  // A deferred reply, for the request route.sequence; reactor thread only.
  virtual void deliver(const commands::ReplyRoute& route, proto::Reply& reply) = 0;
  // The body sink or source of route.sequence can go on.
  virtual void resume_body(const commands::ReplyRoute& route) = 0;

 protected:
  ~RequesterTarget() = default;
};

}  // namespace framed::server
