#include "server/dispatch.hpp"

#include <spdlog/spdlog.h>

#include "commands/command.hpp"
#include "server/server.hpp"

namespace framed::server {

void answer_error(Server& server, const ListenerSettings& listener, proto::ErrorCode code,
                  std::string_view message, proto::Reply& reply) {
  reply.fail(code, message);
  server.stats().total.count_error(code);
  listener.stats->count_error(code);
}

bool answer_frame(Server& server, const ListenerSettings& listener, const codec::DecodeResult& frame,
                  simdjson::dom::object header, proto::Request& request, proto::Reply& reply,
                  commands::ReplyRoute route, const exec::PeerCredentials* peer) {
  reply.reset();
  ++server.stats().total.frames_in;
  ++listener.stats->frames_in;

  if (!codec::is_simple_mode(listener.format)) {
    const auto problem = proto::parse_json_request(header, frame.body, request);
    reply.id_json = request.id_json;
    if (problem) {
      answer_error(server, listener, proto::ErrorCode::bad_request, *problem, reply);
      return true;
    }
  } else {
    // `command = NAME` (simple framings only, see config validation): the
    // whole payload is that command's body.
    const std::optional<std::string_view> forced =
        listener.forced_command ? std::optional<std::string_view>(*listener.forced_command) : std::nullopt;
    proto::parse_simple_request(frame.body, forced, request);
    if (request.command.empty()) {
      answer_error(server, listener, proto::ErrorCode::bad_request, "empty request: expected COMMAND [ARGUMENTS]",
                   reply);
      return true;
    }
  }

  commands::RegisteredCommand* command = server.commands().find(request.command);
  if (command == nullptr) {
    answer_error(server, listener, proto::ErrorCode::unknown_command,
                 "unknown command " + commands::quote_client_name(request.command) + " (try help)", reply);
    return true;
  }
  route.stats = &command->stats;
  commands::CommandContext context{server, listener, route};
  context.peer = peer;
  command->command->run(request, reply, context);
  ++command->stats.calls;
  if (context.deferred) return false;
  count_outcome(server, listener, command->stats, reply);
  return true;
}

void count_outcome(Server& server, const ListenerSettings& listener, commands::CommandStats& stats,
                   const proto::Reply& reply) {
  if (reply.ok) return;
  ++stats.failures;
  server.stats().total.count_error(reply.error_code);
  listener.stats->count_error(reply.error_code);
}

}  // namespace framed::server
