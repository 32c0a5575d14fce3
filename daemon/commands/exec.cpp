// exec: run a command the config names, in the worker pool, and answer with
// its output (PROTOCOL.md section 4, CONFIG.md [commands.NAME]).
//
// Safe by construction: the client chooses a name, never a program. argv is
// fixed in the config; with allow_args the client's args are appended as
// separate argv items, and the program is exec'd directly, so no byte of a
// request ever reaches a shell's parser. Everything a request may be refused
// for is checked here, on the reactor thread, before any work is queued; the
// worker gets an owned RunRequest (the request's views die when run()
// returns) and posts the RunResult back to the reactor, where the reply is
// built and delivered in request order.

#include <fmt/format.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "auth/permissions.hpp"
#include <vector>

#include "base/clock.hpp"
#include "commands/command.hpp"
#include "commands/concurrent_runs.hpp"
#include "commands/exec.hpp"
#include "exec/child_process.hpp"
#include "exec/peer_credentials.hpp"
#include "server/listener_settings.hpp"
#include "config/config.hpp"
#include "exec/worker_pool.hpp"
#include "proto/json_writer.hpp"

namespace framed::commands {
namespace {

// Between SIGTERM and SIGKILL on timeout or on output past max_output: long
// enough for a program to clean up, short enough that a timeout answers
// within a second of its deadline.
constexpr auto kKillGrace = std::chrono::seconds(1);

std::string seconds_text(std::chrono::nanoseconds duration) {
  return fmt::format("{:g}s", std::chrono::duration<double>(duration).count());
}

bool peer_allowed(const config::Command& command, const exec::PeerCredentials& peer) {
  const auto& uids = command.allow_uids;
  if (std::find(uids.begin(), uids.end(), peer.uid) != uids.end()) return true;
  return std::any_of(command.allow_gids.begin(), command.allow_gids.end(),
                     [&peer](std::uint32_t gid) { return peer.in_group(gid); });
}

// Everything the child needs, owned: argv fixed by the config plus the
// client's args as separate items, the configured environment, the body as
// stdin.
exec::RunRequest make_run_request(const config::Command& command, std::span<const std::string_view> args,
                                  std::string_view stdin_data) {
  exec::RunRequest run;
  run.spawn.argv.reserve(command.argv.size() + args.size());
  run.spawn.argv.assign(command.argv.begin(), command.argv.end());
  for (const std::string_view arg : args) run.spawn.argv.emplace_back(arg);
  run.spawn.env.reserve(command.env.size());
  for (const auto& [key, value] : command.env) run.spawn.env.push_back(key + "=" + value);
  run.spawn.cwd = command.cwd;
  run.spawn.limits.cpu_seconds = command.rlimit_cpu;
  run.spawn.limits.address_space = command.rlimit_as;
  run.spawn.limits.open_files = command.rlimit_nofile;
  run.spawn.limits.processes = command.rlimit_nproc;
  // Only root may change ids; a daemon that is not runs the command as
  // itself, which exec() has checked is what the config asks.
  if ((command.run_uid || command.run_gid) && ::geteuid() == 0) {
    run.spawn.run_as = exec::Credentials{command.run_uid.value_or(0), command.run_gid.value_or(0)};
  }
  run.stdin_data.assign(stdin_data);
  run.timeout = command.timeout;
  run.max_output = command.max_output;
  run.kill_grace = kKillGrace;
  return run;
}

// Output chunks of a streamed run posted to the reactor and not yet pushed
// to the requester, per run: past this the worker stops reading the pipes
// until the reactor catches up (the child blocks on its full pipe), so a
// flood never queues more than this between the threads. Beyond the
// reactor, the requester's own event backlog (max_event_backlog) bounds it.
constexpr std::size_t kMaxOutputInFlight = 256 * 1024;

// exec with "stream": true: each chunk, as the worker reads it, is posted
// to the reactor and pushed to the requester as an `output` event.
class OutputEvents final : public exec::OutputSink {
 public:
  OutputEvents(CommandHost& host, std::uint64_t requester, std::string id_json)
      : host_(host), requester_(requester), id_json_(std::move(id_json)) {}

  bool ready() override { return in_flight_->load(std::memory_order_acquire) < kMaxOutputInFlight; }

  void write(exec::OutputStream stream, std::string_view chunk) override {
    in_flight_->fetch_add(chunk.size(), std::memory_order_acq_rel);
    std::string fields = ",\"event\":\"output\"";
    if (!id_json_.empty()) fields.append(",\"id\":").append(id_json_);
    fields.append(stream == exec::OutputStream::stdout_stream ? ",\"stream\":\"stdout\"" : ",\"stream\":\"stderr\"");
    // Posted in the order read; the run's result is posted after the last
    // chunk, so every event reaches the requester before its reply.
    host_.post([&host = host_, requester = requester_, in_flight = in_flight_, fields = std::move(fields),
                bytes = std::string(chunk)] {
      in_flight->fetch_sub(bytes.size(), std::memory_order_acq_rel);
      // Gone, or too slow (then closing): the chunk is dropped.
      host.push_event(requester, fields, bytes);
    });
  }

 private:
  CommandHost& host_;
  std::uint64_t requester_;
  std::string id_json_;
  // Shared with the posted chunks, which may run after the run has ended.
  std::shared_ptr<std::atomic<std::size_t>> in_flight_ = std::make_shared<std::atomic<std::size_t>>(0);
};

void add_output_fields(proto::Reply& reply, const exec::RunResult& result) {
  reply.add_field("exit_code", std::int64_t{result.exit_code});
  reply.add_field("signal", std::int64_t{result.signal});
  reply.add_field("stdout_size", std::uint64_t{result.out.size});
  reply.add_field("stderr_size", std::uint64_t{result.err.size});
  reply.add_field("truncated", result.out.truncated || result.err.truncated);
  reply.add_field("stdout_truncated", result.out.truncated);
  reply.add_field("stderr_truncated", result.err.truncated);
}

// What the reactor side needs to know about a run besides its result.
struct RunTicket {
  ReplyRoute route;
  std::string name;
  std::chrono::nanoseconds timeout{};
  base::TimePoint accepted;
};

// On the reactor thread: the result becomes the reply.
void finish(CommandHost& host, const RunTicket& ticket, exec::RunResult& result) {
  const std::string& name = ticket.name;
  ExecStats& stats = host.exec_stats(name);
  --stats.active;
  host.concurrent_runs().finish(name);
  ++stats.runs;
  stats.latency.record(base::Clock::now() - ticket.accepted);

  proto::Reply reply;
  switch (result.outcome) {
    case exec::RunOutcome::finished:
      if (result.exit_code != 0) ++stats.failures;
      break;
    case exec::RunOutcome::timed_out:
      ++stats.failures;
      ++stats.timeouts;
      // ok: false, but still with the output captured so far (PROTOCOL.md).
      reply.fail(proto::ErrorCode::timeout, "exec " + quote_client_name(name) + " did not finish within its timeout of " +
                                                seconds_text(ticket.timeout) + " and was killed");
      break;
    case exec::RunOutcome::cancelled:
      ++stats.failures;
      reply.fail(proto::ErrorCode::internal, "exec " + quote_client_name(name) + " was killed: the daemon is shutting down");
      break;
    case exec::RunOutcome::failed:
      ++stats.failures;
      // The detail names paths of the server's: for the operator's log, not
      // for the client.
      host.warn_rate_limited("exec " + quote_client_name(name) + " could not run: " + result.error);
      reply.fail(proto::ErrorCode::internal,
                 "exec " + quote_client_name(name) + " could not be started (the daemon's log says why)");
      host.deliver_reply(ticket.route, reply);
      return;
  }
  if (result.out.truncated || result.err.truncated) ++stats.truncated;
  SPDLOG_DEBUG("exec {}: exit code {} in {:.3f} ms, {} + {} bytes of output{}", name, result.exit_code,
               std::chrono::duration<double, std::milli>(result.elapsed).count(), result.out.size,
               result.err.size, result.outcome == exec::RunOutcome::timed_out ? " (timeout)" : "");
  add_output_fields(reply, result);
  // body = stdout then stderr; their sizes say where one ends. (Streamed:
  // both empty, the output went out as events.)
  reply.body_storage = std::move(result.out.bytes);
  reply.body_storage.append(result.err.bytes);
  reply.use_storage_as_body();
  host.deliver_reply(ticket.route, reply);
}

class Exec final : public Command {
 public:
  std::string_view name() const noexcept override { return "exec"; }
  std::string_view summary() const noexcept override {
    return "runs a configured command (fixed argv, no shell); body = stdin, reply = stdout then stderr, exit_code";
  }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) override;
};

void Exec::run(const proto::Request& request, proto::Reply& reply, CommandContext& context) {
  CommandHost& host = context.host;

  // Which command, with which args.
  std::string_view name;
  std::vector<std::string_view> words;
  std::span<const std::string_view> args;
  std::string_view stdin_data;
  bool stream = false;
  if (request.mode == proto::RequestMode::json) {
    if (const auto field = request.header["stream"]; field.error() != simdjson::NO_SUCH_FIELD) {
      if (field.get_bool().get(stream) != simdjson::SUCCESS) {
        return reply.fail(proto::ErrorCode::bad_request, "exec: \"stream\" must be true or false");
      }
      if (stream && (context.listener.kind == "udp" || context.listener.kind == "unix_dgram")) {
        return reply.fail(proto::ErrorCode::bad_request,
                          "exec: \"stream\" needs a stream connection (TCP or Unix): a datagram cannot carry events");
      }
    }
    const auto field = request.header["name"];
    if (field.error() == simdjson::NO_SUCH_FIELD) {
      return reply.fail(proto::ErrorCode::bad_request, "exec needs \"name\": the configured command to run");
    }
    if (field.get_string().get(name) != simdjson::SUCCESS) {
      return reply.fail(proto::ErrorCode::bad_request, "exec: \"name\" must be a string");
    }
    args = request.args;
    stdin_data = request.body;
  } else {
    // Simple mode: `exec NAME [ARG ...]`, split on spaces; no stdin.
    proto::split_words(request.body, words);
    if (words.empty()) return reply.fail(proto::ErrorCode::bad_request, "usage: exec NAME [ARG ...]");
    name = words.front();
    args = std::span<const std::string_view>(words).subspan(1);
  }

  // May it run, here, for this peer, with these args?
  const auto& commands = host.config().commands;
  const auto found = commands.find(std::string(name));
  if (found == commands.end()) {
    return reply.fail(proto::ErrorCode::forbidden, "exec: no command " + quote_client_name(name) + " is configured");
  }
  const config::Command& command = found->second;
  ExecStats& stats = host.exec_stats(command.name);
  const auto refuse = [&](proto::ErrorCode code, const std::string& message) {
    ++(code == proto::ErrorCode::too_busy ? stats.busy : stats.refused);
    reply.fail(code, message);
  };
  if (const auto& allowed = context.listener.allow_commands;
      allowed && std::find(allowed->begin(), allowed->end(), command.name) == allowed->end()) {
    return refuse(proto::ErrorCode::forbidden, "exec: " + quote_client_name(command.name) + " is not allowed on listener " +
                                                   quote_client_name(context.listener.name));
  }
  if (const config::Principal* principal = context.principal();
      principal != nullptr && !auth::may_exec(*principal, command.name)) {
    std::string message("exec: ");
    message.append(quote_client_name(command.name)).append(" is not allowed for principal '");
    message.append(principal->name).append("'");
    return refuse(proto::ErrorCode::forbidden, message);
  }
  if (!command.allow_uids.empty() || !command.allow_gids.empty()) {
    if (context.peer == nullptr) {
      return refuse(proto::ErrorCode::forbidden, "exec: " + quote_client_name(command.name) +
                                                     " is restricted to allowed users on a Unix stream socket");
    }
    if (!peer_allowed(command, *context.peer)) {
      return refuse(proto::ErrorCode::forbidden, "exec: " + quote_client_name(command.name) + " is not allowed for uid " +
                                                     std::to_string(context.peer->uid));
    }
  }
  if (::geteuid() != 0 && ((command.run_uid && *command.run_uid != ::geteuid()) ||
                            (command.run_gid && *command.run_gid != ::getegid()))) {
    std::string message("exec: ");
    message.append(quote_client_name(command.name));
    message.append(" is configured to run as another user or group, which needs the daemon to run as root");
    return refuse(proto::ErrorCode::internal, message);
  }
  if (!args.empty() && !command.allow_args) {
    return refuse(proto::ErrorCode::forbidden,
                  "exec: " + quote_client_name(command.name) + " takes no arguments (allow_args is off)");
  }
  // argv items are C strings: a NUL would silently cut an argument short.
  if (std::any_of(args.begin(), args.end(), [](std::string_view arg) { return arg.find('\0') != arg.npos; })) {
    return reply.fail(proto::ErrorCode::bad_request, "exec: an argument contains a NUL byte");
  }
  // Counted across every reactor: the limit is the daemon's.
  std::uint32_t running = 0;
  if (!host.concurrent_runs().try_start(command.name, command.max_concurrent, running)) {
    return refuse(proto::ErrorCode::too_busy, "exec: " + quote_client_name(command.name) + " is already running " +
                                                  std::to_string(running) + " times (max_concurrent)");
  }

  // Hand it to a worker, owned; the result comes back through post().
  const int cancel_fd = host.worker_pool().cancel_fd();
  // shared_ptr: the job is a std::function, which must be copyable.
  std::shared_ptr<OutputEvents> events;
  if (stream) events = std::make_shared<OutputEvents>(host, context.route.requester, request.id_json);
  auto job = [&host, cancel_fd, ticket = RunTicket{context.route, command.name, command.timeout, base::Clock::now()},
              run = make_run_request(command, args, stdin_data), events = std::move(events)]() mutable {
    exec::RunResult result;
    run.output_sink = events.get();
    try {
      result = exec::run_child(run, cancel_fd);
    } catch (const std::exception& e) {
      // Memory exhausted while capturing output: still an answer. run_child
      // has killed and reaped the child on the way out.
      result = exec::RunResult{};
      result.outcome = exec::RunOutcome::failed;
      result.error = e.what();
    }
    // The host outlives every job: the daemon joins its workers before the
    // shards go.
    host.post([&host, ticket = std::move(ticket), result = std::move(result)]() mutable {
      finish(host, ticket, result);
    });
  };
  if (!host.worker_pool().try_submit(std::move(job))) {
    host.concurrent_runs().finish(command.name);
    return refuse(proto::ErrorCode::too_busy, "exec: the worker pool is full (" +
                                                  std::to_string(host.worker_pool().queued()) +
                                                  " jobs waiting); try again later");
  }
  ++stats.active;
  [[maybe_unused]] const ReplyRoute deferred = context.defer();
}

}  // namespace

void register_exec_command(CommandRegistry& registry) { registry.add(std::make_unique<Exec>()); }

}  // namespace framed::commands
