#include "pipeline/dispatcher.hpp"

#include "auth/client_session.hpp"
#include "config/config.hpp"

namespace framed::pipeline {

void Dispatcher::answer_error(const Origin& origin, proto::ErrorCode code, std::string_view message,
                              proto::Reply& reply) {
  reply.fail(code, message);
  origin.listener.stats->count_error(code);
}

void Dispatcher::count_outcome(const Origin& origin, commands::CommandStats& stats, const proto::Reply& reply) noexcept {
  if (reply.ok) return;
  ++stats.failures;
  origin.listener.stats->count_error(reply.error_code);
}

void Dispatcher::count_deferred(const Origin& origin, const commands::ReplyRoute& route,
                                const proto::Reply& reply) noexcept {
  record_latency(*route.stats, route.taken_at);
  count_outcome(origin, *route.stats, reply);
}

void Dispatcher::record_latency(commands::CommandStats& stats, base::TimePoint taken_at) noexcept {
  stats.latency.record(base::Clock::now() - taken_at);
}

void Dispatcher::begin_batch() noexcept {
  if (batch_depth_++ == 0) batch_started_ = host_.now();
}

void Dispatcher::end_batch() noexcept {
  if (--batch_depth_ != 0 || batch_touched_.empty()) return;
  const base::Duration took = base::Clock::now() - batch_started_;
  for (const std::size_t index : batch_touched_) {
    command_stats_[index].latency.record(took, batch_counts_[index]);
    batch_counts_[index] = 0;
  }
  batch_touched_.clear();
}

void Dispatcher::count_immediate(const commands::RegisteredCommand& command) noexcept {
  if (batch_depth_ == 0) {
    record_latency(command_stats_[command.index], host_.now());
    return;
  }
  if (batch_counts_[command.index]++ == 0) batch_touched_.push_back(command.index);
}

const commands::RegisteredCommand* Dispatcher::prepare(const Origin& origin, simdjson::dom::object header,
                                                       std::string_view payload, proto::Request& request,
                                                       proto::Reply& reply) {
  reply.reset();
  const server::ListenerSettings& listener = origin.listener;
  if (listener.format.json_frames()) {
    const auto problem = proto::parse_json_request(header, payload, request);
    reply.id_json = request.id_json;
    if (problem) {
      answer_error(origin, proto::ErrorCode::bad_request, *problem, reply);
      return nullptr;
    }
  } else {
    // `command = NAME` (simple framings only, see config validation): the
    // whole payload is that command's body.
    const std::optional<std::string_view> forced =
        listener.forced_command ? std::optional<std::string_view>(*listener.forced_command) : std::nullopt;
    proto::parse_simple_request(payload, forced, request);
    if (request.command.empty()) {
      answer_error(origin, proto::ErrorCode::bad_request, "empty request: expected COMMAND [ARGUMENTS]", reply);
      return nullptr;
    }
  }
  const commands::RegisteredCommand* command = commands_.find(request.command);
  if (origin.session != nullptr && !admit(origin, command, reply)) return nullptr;
  if (command == nullptr) {
    answer_error(origin, proto::ErrorCode::unknown_command,
                 "unknown command " + commands::quote_client_name(request.command) + " (try help)", reply);
  }
  return command;
}

bool Dispatcher::admit(const Origin& origin, const commands::RegisteredCommand* command, proto::Reply& reply) {
  auth::ClientSession& session = *origin.session;
  session.refresh(host_.principals());
  const commands::Permission permission = command != nullptr ? command->permission : commands::Permission::anyone;
  if (!session.admitted() && permission != commands::Permission::before_auth) {
    // Before it is somebody, a client learns nothing, not even which
    // commands exist.
    answer_error(origin, proto::ErrorCode::forbidden,
                 origin.listener.auth == config::ListenerAuth::certificate
                     ? "this listener needs a client certificate that names a principal"
                     : "authenticate first: {\"cmd\":\"auth\",\"token\":\"...\"} (simple mode: auth TOKEN)",
                 reply);
    return false;
  }
  const config::Principal* principal = session.principal();
  if (principal == nullptr) return true;
  if (!session.take_request(host_.rate_buckets(), host_.now())) {
    ++origin.listener.stats->rate_limited;
    std::string message("principal '");
    message.append(principal->name).append("' is past its rate of ");
    message.append(std::to_string(principal->rate)).append(" requests a second");
    answer_error(origin, proto::ErrorCode::too_busy, message, reply);
    return false;
  }
  const bool reads = permission == commands::Permission::read_files;
  const bool writes = permission == commands::Permission::write_files;
  if ((reads && principal->files == config::FileAccess::none) ||
      (writes && principal->files != config::FileAccess::write)) {
    std::string message("principal '");
    message.append(principal->name).append("' may not ").append(writes ? "write" : "read");
    message.append(" files (files = \"").append(config::to_string(principal->files)).append("\")");
    answer_error(origin, proto::ErrorCode::forbidden, message, reply);
    return false;
  }
  return true;
}

Dispatcher::RunOutcome Dispatcher::run(const Origin& origin, const commands::RegisteredCommand& command,
                                       const proto::Request& request, proto::Reply& reply,
                                       commands::ReplyRoute& route) {
  commands::CommandStats& stats = command_stats_[command.index];
  route.stats = &stats;
  route.taken_at = taken_at();
  commands::CommandContext context = this->context(origin, route);
  command.command->run(request, reply, context);
  ++stats.calls;
  if (context.deferred) return context.holds_order ? RunOutcome::deferred : RunOutcome::answer_pending;
  count_immediate(command);
  count_outcome(origin, stats, reply);
  return RunOutcome::answered;
}

std::unique_ptr<commands::BodySink> Dispatcher::open_body(const Origin& origin,
                                                          const commands::RegisteredCommand& command,
                                                          const proto::Request& request, proto::Reply& reply,
                                                          commands::ReplyRoute& route) {
  commands::CommandStats& stats = command_stats_[command.index];
  route.stats = &stats;
  route.taken_at = taken_at();
  ++stats.calls;
  commands::CommandContext context = this->context(origin, route);
  auto sink = command.command->open_body(request, reply, context);
  if (!sink) {
    count_immediate(command);
    count_outcome(origin, stats, reply);
  }
  return sink;
}

bool Dispatcher::finish_body(const Origin& origin, commands::BodySink& sink, proto::Reply& reply,
                             const commands::ReplyRoute& route) {
  commands::CommandContext context = this->context(origin, route);
  sink.finish(reply, context);
  if (context.deferred) return false;
  // The body took its own time, maybe many batches: timed on its own.
  record_latency(*route.stats, route.taken_at);
  count_outcome(origin, *route.stats, reply);
  return true;
}

}  // namespace framed::pipeline
