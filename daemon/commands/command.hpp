#pragma once
// A command: a name, a one-line summary for `help`, and what it does with a
// request. Commands registered here work; what is not built is absent, and so
// answers unknown_command.
//
// A command sees its request, its reply, and a CommandContext: the listener
// the request came through, the peer, and a CommandHost — the narrow view of
// the daemon a command may use (the config snapshot, the worker pool, the
// way back to its requester, the counters). Never the server itself.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.hpp"
#include "proto/reply.hpp"
#include "proto/request.hpp"
#include "stats/latency_histogram.hpp"

namespace framed::server {
struct ListenerSettings;
struct StatsSnapshot;
}  // namespace framed::server
namespace framed::config {
struct Config;
struct Principal;
}  // namespace framed::config
namespace framed::auth {
class ClientSession;
class PrincipalTable;
class RateBuckets;
}  // namespace framed::auth
namespace framed::exec {
struct PeerCredentials;
class WorkerPool;
}  // namespace framed::exec
namespace framed::pubsub {
class ChannelTable;
class Subscriber;
}  // namespace framed::pubsub

namespace framed::commands {

struct CommandStats {
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;  // replies with ok = false
  // From the daemon taking the request up to its reply being ready
  // (pipeline/dispatcher.hpp says how it is timed).
  stats::LatencyHistogram<std::chrono::microseconds> latency;

  CommandStats& operator+=(const CommandStats& other) noexcept {
    calls += other.calls;
    failures += other.failures;
    latency.merge(other.latency);
    return *this;
  }
};

// Where a deferred reply goes: the requester (a connection or a datagram
// endpoint, by id: it may be gone by the time the answer is ready) and the
// request's place in that requester's reply order.
struct ReplyRoute {
  std::uint64_t requester = 0;
  std::uint64_t sequence = 0;
  CommandStats* stats = nullptr;  // the command's counters, in the requester's shard
  base::TimePoint taken_at{};     // when the daemon took the request up (latency)
};

class CommandRegistry;
struct ExecStats;
struct FileStats;
class PartialUploads;
class ConcurrentRuns;

// What a command may use of the daemon. Implemented by the shard (one
// reactor thread and what it serves); every method is for that reactor's
// thread except post().
class CommandHost {
 public:
  // The configuration the daemon runs with now; a reload may replace it, so
  // a command that answers later copies what it needs.
  [[nodiscard]] virtual const config::Config& config() const noexcept = 0;
  [[nodiscard]] virtual const CommandRegistry& commands() const noexcept = 0;
  // Blocking work goes here; a job posts its result back with post().
  [[nodiscard]] virtual exec::WorkerPool& worker_pool() noexcept = 0;
  // Runs fn on this reactor's thread (callable from any thread).
  virtual void post(std::function<void()> fn) = 0;
  // A deferred command's answer (CommandContext::defer), on the reactor
  // thread, exactly once. Dropped when the requester has gone meanwhile.
  virtual void deliver_reply(const ReplyRoute& route, proto::Reply& reply) = 0;
  // A body sink that was behind, or a body source that had nothing ready,
  // can go on: the requester offers the next bytes or pulls again.
  virtual void resume_body(const ReplyRoute& route) = 0;
  // An event frame (PROTOCOL.md section 4: exec output) for a requester,
  // encoded in its framing: `fields` as Reply::fields renders them, `body`
  // the payload. Dropped when the requester has gone or takes no events (a
  // datagram endpoint); false then, or when it is too slow and is closing.
  virtual bool push_event(std::uint64_t requester, std::string_view fields, std::string_view body) = 0;
  // pub/sub: this shard's channels, and the requester as a subscriber (null
  // when it cannot take events: a datagram endpoint, a simple framing).
  [[nodiscard]] virtual pubsub::ChannelTable& channels() noexcept = 0;
  [[nodiscard]] virtual pubsub::Subscriber* subscriber(std::uint64_t requester) noexcept = 0;
  // Offers `message` to every subscriber of `channel` on every reactor, in
  // one order of publishes for all of them. Returns how many took it when
  // that is known at once (one reactor, a small fan-out); otherwise nullopt,
  // and `done` is called with the count later, on this reactor's thread.
  virtual std::optional<std::size_t> publish(std::string_view channel, std::string_view message,
                                             std::function<void(std::size_t receivers)> done) = 0;
  // True where publishes reach this reactor's channels through its post
  // queue (several reactors): a subscription change must take its turn
  // there too, behind them.
  [[nodiscard]] virtual bool publishes_are_queued() const noexcept = 0;
  // A publish done here, for the subscribers of the other hosts ([pubsub]
  // bridge; nothing without one). Never blocks.
  virtual void forward_publish(std::string_view channel, std::string_view message) = 0;
  // exec's per-command counters, of this shard (reactor thread).
  [[nodiscard]] virtual ExecStats& exec_stats(std::string_view name) = 0;
  // The file commands' counters, of this shard (reactor thread).
  [[nodiscard]] virtual FileStats& file_stats() noexcept = 0;
  // Uploads kept for resuming: process-wide, thread-safe (partial_uploads.hpp).
  [[nodiscard]] virtual PartialUploads& partial_uploads() noexcept = 0;
  // An upload was kept in partial_uploads(): expire it (and any other) at
  // its resume_window, whether or not anything touches the table (reactor
  // thread; a worker posts it).
  virtual void expire_partial_uploads_on_time() = 0;
  // Every counter, added up across the daemon's reactors, for `stats`; with
  // `reset`, every counter back to zero right after it was read, on each
  // reactor (gauges such as open connections or running commands keep their
  // value). Returned when known at once (one reactor); otherwise nullopt, and
  // `later` is called with it on this reactor's thread once every reactor
  // has answered.
  using StatsReady = std::function<void(const server::StatsSnapshot& stats)>;
  virtual std::optional<server::StatsSnapshot> gather_stats(bool reset, StatsReady later) = 0;
  // Runs of each exec command now, in the whole daemon (max_concurrent).
  [[nodiscard]] virtual ConcurrentRuns& concurrent_runs() noexcept = 0;
  // The time of the reactor's current batch of completions (read once per
  // batch): when a request taken up now arrived.
  [[nodiscard]] virtual base::TimePoint now() noexcept = 0;
  // A warning that may repeat in a tight loop: logged at most every few
  // seconds, with the count of those suppressed.
  virtual void warn_rate_limited(const std::string& message) = 0;
  // Runs fn on the reactor thread at `deadline` (auth: a wrong token's
  // answer is held back).
  virtual void run_at(base::TimePoint deadline, std::function<void()> fn) = 0;
  // The [principals] of the running config (a reload replaces the table).
  [[nodiscard]] virtual const std::shared_ptr<const auth::PrincipalTable>& principals() const noexcept = 0;
  // Each principal's request rate, in the whole daemon.
  [[nodiscard]] virtual auth::RateBuckets& rate_buckets() noexcept = 0;

 protected:
  ~CommandHost() = default;
};

// What a running command may see: the host, the listener the request came
// through, the peer, and a way to answer later.
struct CommandContext {
  CommandHost& host;
  const server::ListenerSettings& listener;
  ReplyRoute route;
  bool deferred = false;
  bool holds_order = true;  // deferred: the requester waits for the answer (defer_answer: it does not)
  // The peer's identity on a Unix stream socket (SO_PEERCRED, taken when it
  // connected); null on every other transport. exec's allow_uids/allow_gids.
  const exec::PeerCredentials* peer = nullptr;
  // Who the client is (stream connections; null for datagrams): `auth`
  // changes it, exec and pub/sub read the principal's permissions.
  auth::ClientSession* session = nullptr;

  // The principal the client is, or null: none (the listener's own
  // permissions apply).
  [[nodiscard]] const config::Principal* principal() const noexcept;

  // For a command whose answer comes later (from the worker pool): it leaves
  // `reply` alone and, on the reactor thread, exactly once, hands the answer
  // to host.deliver_reply(route, reply). The requester keeps every later
  // reply waiting behind it, so replies stay in request order, and fills in
  // the request's id itself.
  [[nodiscard]] ReplyRoute defer() noexcept {
    deferred = true;
    return route;
  }
  // For a command that has taken effect already, only its answer comes
  // later (publish: the message has its place in every subscriber's queue,
  // `receivers` is known once they all have it). As defer(), but a stream
  // requester goes on with its next requests meanwhile; their replies still
  // wait behind this one.
  [[nodiscard]] ReplyRoute defer_answer() noexcept {
    deferred = true;
    holds_order = false;
    return route;
  }
};

// A request body consumed as it arrives (to disk, to a child's stdin),
// instead of being buffered whole: see Command::open_body.
class BodySink {
 public:
  // Destroyed without finish(): the request was abandoned (the connection
  // went away mid-body). Undo what was done; there is nobody to answer.
  virtual ~BodySink() = default;
  // The next bytes of the body. Returns how many it took; fewer than offered
  // means it is behind: the requester stops reading from its peer and offers
  // the rest once the sink calls host.resume_body(route).
  virtual std::size_t write(std::string_view bytes) = 0;
  // The whole body was written: answer as Command::run does (fill `reply`,
  // or defer through the context).
  virtual void finish(proto::Reply& reply, CommandContext& context) = 0;
};

// What a command touches, for the checks the dispatcher makes before it
// runs (a principal's `files`; before `auth`, nothing but auth itself).
// Exec names and channels are the commands' own to check: they are in the
// request.
enum class Permission : std::uint8_t { anyone, before_auth, read_files, write_files };

class Command {
 public:
  virtual ~Command() = default;
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  [[nodiscard]] virtual std::string_view summary() const noexcept = 0;
  // Runs on the reactor thread; must not block. Fills `reply` (reset, with
  // the request's id already set), or defers it (CommandContext::defer).
  // A command that streams its body (streams_body) is never run(): its
  // requests go to open_body.
  virtual void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) = 0;

  // True: requests of this command hand their body to open_body as it
  // arrives, in pieces, however large (json framing; other framings hand the
  // whole body to the sink at once).
  [[nodiscard]] virtual bool streams_body() const noexcept { return false; }
  [[nodiscard]] virtual Permission permission() const noexcept { return Permission::anyone; }
  // Called with the request's header (request.body is empty) before any of
  // the body. Returns the sink, or null after filling `reply` with an error:
  // the body is then skipped and the error answered. The request's views
  // die when this returns: the sink copies what it needs.
  virtual std::unique_ptr<BodySink> open_body(const proto::Request& /*request*/, proto::Reply& reply,
                                              CommandContext& /*context*/) {
    reply.fail(proto::ErrorCode::internal, "this command does not take a streamed body");
    return nullptr;
  }
};

struct RegisteredCommand {
  std::unique_ptr<Command> command;
  // Its place in registration order: the index of its counters in a shard.
  std::size_t index = 0;
  // command->streams_body(), asked once: the pipeline looks at it per request.
  bool streams_body = false;
  Permission permission = Permission::anyone;  // command->permission(), asked once
};

// Every command, by name. Built once at start-up and read-only afterwards,
// so every reactor thread may read it; the counters live in each shard.
class CommandRegistry {
 public:
  void add(std::unique_ptr<Command> command);
  [[nodiscard]] const RegisteredCommand* find(std::string_view name) const noexcept;
  // In registration order, for `help` and `stats`.
  [[nodiscard]] const std::vector<std::unique_ptr<RegisteredCommand>>& all() const noexcept { return commands_; }

 private:
  std::vector<std::unique_ptr<RegisteredCommand>> commands_;
  // Keys view the commands' own names, which live as long as the registry.
  std::unordered_map<std::string_view, RegisteredCommand*> by_name_;
};

// A client-chosen name (a command, an exec name) quoted for an error
// message: long enough to recognise a typo, short enough not to echo a
// megabyte of garbage back.
std::string quote_client_name(std::string_view name);

// Registers ping, echo, upper (basic.cpp) and help, stats (introspection.cpp).
void register_basic_commands(CommandRegistry& registry);
void register_introspection_commands(CommandRegistry& registry);
// Registers publish, subscribe, unsubscribe (pubsub.cpp).
void register_pubsub_commands(CommandRegistry& registry);
// Registers auth (auth.cpp).
void register_auth_commands(CommandRegistry& registry);

}  // namespace framed::commands
