#pragma once
// One reactor thread and everything it serves: its listeners, datagram
// endpoints and connections, the counters of what they did, and the
// requests they route. What is process-wide (config, registry, worker pool)
// is the Daemon's; a shard holds a reference to it.
//
// Connections, listeners and endpoints see the shard through narrow owner
// interfaces (StreamListener::Owner, StreamConnection::Owner,
// DatagramEndpoint::Owner), commands through CommandHost; none of them sees
// the Shard class.
//
// Ownership: the shard owns listeners, endpoints and connections (by
// unique_ptr). A connection that has closed is destroyed from a deferred
// function, after the callback that closed it has returned.
//
// Several reactors (daemon.reactors): one shard per reactor thread, joined
// by a ShardGroup. Each serves its own connections on its own sockets
// (SiblingListener); what crosses threads goes through Reactor::post: a
// publish to every shard's channels, a stats request for every shard's
// counters, a reload's config and sockets.
//
// Reactor thread only, except CommandHost::post.

#include <simdjson.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/address_counts.hpp"
#include "auth/rate_buckets.hpp"
#include "commands/command.hpp"
#include "commands/concurrent_runs.hpp"
#include "commands/exec.hpp"
#include "net/bind.hpp"
#include "pipeline/dispatcher.hpp"
#include "pubsub/channel_table.hpp"
#include "pubsub/redis_bridge.hpp"
#include "reactor/reactor.hpp"
#include "server/daemon.hpp"
#include "server/datagram_endpoint.hpp"
#include "server/http_connection.hpp"
#include "server/listener_plan.hpp"
#include "server/rate_limited_log.hpp"
#include "server/served_listener.hpp"
#include "server/shard_group.hpp"
#include "server/socket_activation.hpp"
#include "server/stats.hpp"
#include "server/stream_connection.hpp"
#include "server/stream_listener.hpp"

namespace framed::server {

// A listener's socket as another reactor serves it: a socket of its own on
// the same address (SO_REUSEPORT) for TCP, UDP and http; a second
// descriptor of the same socket for Unix sockets and sockets systemd passed.
// Its per-address counts are the first reactor's: the limit is the daemon's.
struct SiblingListener {
  config::Listener config;
  base::UniqueFd fd;
  net::SocketAddress address;
  bool from_systemd = false;
  std::shared_ptr<auth::AddressCounts> address_counts;
};

class Shard final : public commands::CommandHost,
                    public StreamListener::Owner,
                    public StreamConnection::Owner,
                    public HttpConnection::Owner,
                    public DatagramEndpoint::Owner {
 public:
  // `group`: null for the one reactor of a daemon with daemon.reactors = 1.
  Shard(reactor::Reactor& reactor, Daemon& daemon, ShardGroup* group = nullptr, unsigned index = 0);
  ~Shard();

  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Binds (or adopts from socket activation) every listener and starts
  // accepting. Returns every error; on any error nothing is left bound.
  std::vector<std::string> start(std::vector<ActivatedSocket> activated);
  // Another reactor: its sockets for every listener of the first one
  // (siblings_of_listeners, called on the first one's thread after its
  // start) and starts accepting.
  std::vector<std::string> start_as_sibling(std::vector<SiblingListener> siblings);
  // The first reactor, after start(): a socket for another reactor for each
  // of its listeners, in order. Returns every error.
  std::vector<std::string> siblings_of_listeners(std::vector<SiblingListener>& out) const;

  // SIGTERM/SIGINT: stop accepting, answer what was received, flush, close;
  // stop the reactor when the last connection is gone or after
  // daemon.shutdown_timeout (then dropping what is left, with a log line).
  // http listeners and connections keep answering meanwhile (/healthz says
  // 503 while draining) and are closed when the last other connection is.
  void begin_shutdown();

  // A reload (SIGHUP) whose file passed validation: binds the listeners it
  // adds, and only if every one could be bound, makes `next` the daemon's
  // config, stops the listeners it removes (their connections live on until
  // they close), gives kept listeners their new settings (for connections
  // accepted from now on) and resizes the worker pool. Returns the errors;
  // on any error nothing changed. On the first reactor; it hands the other
  // reactors the new config and their sockets for the added listeners
  // (follow_reload), which cannot fail.
  std::vector<std::string> reload(config::Config next);
  [[nodiscard]] bool shutting_down() const noexcept { return shutting_down_; }
  // Several reactors: every shard has answered what it received (posted by
  // the group); http clients may go now.
  void every_reactor_drained();
  // One line for systemd's STATUS=: connections and listeners.
  [[nodiscard]] std::string status_text() const;

  // commands::CommandHost
  [[nodiscard]] const config::Config& config() const noexcept override { return *config_; }
  [[nodiscard]] const commands::CommandRegistry& commands() const noexcept override { return daemon_.commands(); }
  [[nodiscard]] exec::WorkerPool& worker_pool() noexcept override { return daemon_.worker_pool(); }
  void post(std::function<void()> fn) override { reactor_.post(std::move(fn)); }
  void deliver_reply(const commands::ReplyRoute& route, proto::Reply& reply) override;
  void resume_body(const commands::ReplyRoute& route) override;
  bool push_event(std::uint64_t requester, std::string_view fields, std::string_view body) override;
  [[nodiscard]] pubsub::ChannelTable& channels() noexcept override { return channels_; }
  [[nodiscard]] pubsub::Subscriber* subscriber(std::uint64_t requester) noexcept override;
  std::optional<std::size_t> publish(std::string_view channel, std::string_view message,
                                     std::function<void(std::size_t receivers)> done) override;
  [[nodiscard]] bool publishes_are_queued() const noexcept override { return group_ != nullptr && group_->size() > 1; }
  // Sent to Redis by the first reactor, which holds the bridge.
  void forward_publish(std::string_view channel, std::string_view message) override;
  [[nodiscard]] commands::ExecStats& exec_stats(std::string_view name) override;
  [[nodiscard]] commands::FileStats& file_stats() noexcept override { return file_stats_; }
  [[nodiscard]] commands::PartialUploads& partial_uploads() noexcept override { return daemon_.partial_uploads(); }
  void expire_partial_uploads_on_time() override;
  std::optional<StatsSnapshot> gather_stats(bool reset, StatsReady later) override;
  [[nodiscard]] commands::ConcurrentRuns& concurrent_runs() noexcept override { return daemon_.concurrent_runs(); }
  [[nodiscard]] base::TimePoint now() noexcept override { return reactor_.now(); }
  void warn_rate_limited(const std::string& message) override { warnings_.warn(reactor_.now(), message); }
  void run_at(base::TimePoint deadline, std::function<void()> fn) override {
    reactor_.add_timer(deadline, std::move(fn));
  }
  [[nodiscard]] const std::shared_ptr<const auth::PrincipalTable>& principals() const noexcept override {
    return principals_;
  }
  [[nodiscard]] auth::RateBuckets& rate_buckets() noexcept override { return daemon_.rate_buckets(); }

  // This reactor's counters alone, and zeroing them with the process-wide
  // ones (gather_stats does it for every reactor).
  [[nodiscard]] StatsSnapshot stats() const;
  void reset_stats();

  // StreamListener::Owner
  void on_accepted(StreamListener& listener, base::UniqueFd fd) override;
  void on_accept_failed(StreamListener& listener, int error, bool fd_exhausted) override;

  // StreamConnection::Owner
  void on_connection_closed(StreamConnection& connection) override;
  void on_timeout(TimeoutKind kind) override;
  void on_slow_consumer(StreamConnection& connection) override;
  void flush_soon(StreamConnection& connection) override;

  // HttpConnection::Owner (on_timeout() is above)
  void on_http_connection_closed(HttpConnection& connection) override;
  std::optional<StatsSnapshot> stats_for(std::uint64_t id) override;
  [[nodiscard]] bool draining() const noexcept override { return shutting_down_; }

  // DatagramEndpoint::Owner
  [[nodiscard]] std::uint64_t add_requester(RequesterTarget& target) override;
  void remove_requester(std::uint64_t id) override { requesters_.erase(id); }
  void on_endpoint_stopped() override { maybe_finish_shutdown(); }
  void note_client_error(const std::string& listener, const sockaddr_storage& peer, const proto::Reply& reply) override;

  [[nodiscard]] reactor::Reactor& reactor() noexcept { return reactor_; }

 private:
  // Binds (or adopts) the socket of `config` and makes the object that will
  // serve it, not started yet. Null with `error` set when it cannot be bound.
  std::unique_ptr<ServedListener> bind_listener(const config::Listener& config, ActivatedSocket* adopted,
                                                std::string& error);
  // The object that serves `fd`, not started yet.
  std::unique_ptr<ServedListener> make_served(const config::Listener& listener, base::UniqueFd fd,
                                              const net::SocketAddress& address, bool from_systemd,
                                              std::shared_ptr<ListenerSettings> settings, net::SocketFile socket_file);
  // SO_REUSEPORT where other reactors bind the same addresses.
  [[nodiscard]] net::PortSharing port_sharing() const noexcept;
  // " [reactor N]" in log lines where there are several, else nothing.
  [[nodiscard]] std::string reactor_label() const;
  [[nodiscard]] std::optional<SiblingListener> sibling_of(const ServedListener& served, std::string& error) const;
  std::unique_ptr<ServedListener> serve_sibling(SiblingListener sibling);
  [[nodiscard]] std::vector<ListenerInPlace> listeners_in_place() const;
  // Listeners kept, updated, added (`bound`, by index in `next`; null: not
  // served here) and stopped, as `plan` says.
  void apply_listener_plan(const ListenerPlan& plan, const std::vector<config::Listener>& next,
                           std::vector<std::unique_ptr<ServedListener>>& bound);
  // Another reactor's part of a reload the first one has applied.
  void follow_reload(std::shared_ptr<const config::Config> next, std::shared_ptr<const auth::PrincipalTable> principals,
                     std::vector<std::optional<SiblingListener>> added);
  void adopt_config(std::shared_ptr<const config::Config> next, std::shared_ptr<const auth::PrincipalTable> principals);
  // This reactor's counters back to zero (reset_stats: and the daemon's).
  void reset_own_counters();
  // Serves `served` with the settings of `config` (a reload), keeping its
  // socket and its counters.
  void update_listener(ServedListener& served, const config::Listener& config);
  // Listeners a reload removed are destroyed once stopped and without
  // connections.
  void release_retired();
  void schedule_sweep();
  void sweep();
  // limits.max_buffered_total, once per sweep: lets stalled connections read
  // again when there is room, and sheds the largest stuck ones when there
  // is not.
  void enforce_buffer_budget();
  void maybe_finish_shutdown();
  // Every listener: the configured ones, then those a reload removed that
  // still finish their connections.
  template <typename Fn>
  void for_each_served(Fn&& fn) const {
    for (const auto& served : listeners_) fn(*served);
    for (const auto& served : retired_) fn(*served);
  }
  // Replies sent over every non-http listener of this shard (the drain's log line).
  [[nodiscard]] std::uint64_t replies_out() const noexcept;
  // Stream and http connections open now, over every listener of this shard.
  [[nodiscard]] std::uint64_t open_connections() const noexcept;
  void accept_http(const std::shared_ptr<const ListenerSettings>& settings, base::UniqueFd fd, std::string peer,
                   std::uint64_t id);
  // Tells a client it cannot be served now (too_busy, or an HTTP 503 with
  // `reason`) before its socket is closed.
  void refuse_connection(const ListenerSettings& settings, const base::UniqueFd& fd, std::string_view reason);

  reactor::Reactor& reactor_;
  Daemon& daemon_;
  ShardGroup* group_;
  unsigned index_;
  // The config and principals this shard serves with: the daemon's, handed
  // over by a reload on this thread.
  std::shared_ptr<const config::Config> config_;
  std::shared_ptr<const auth::PrincipalTable> principals_;
  // This shard's counters: per listener (in each ListenerSettings), per
  // command (by RegisteredCommand::index), per exec name, and its own.
  std::vector<commands::CommandStats> command_stats_;
  commands::ExecStatsTable exec_stats_;
  commands::FileStats file_stats_;
  ShardStats shard_stats_;
  // The reactor's allocation-failure count when the stats were last reset.
  std::uint64_t allocation_failures_before_reset_ = 0;
  std::uint64_t orphans_killed_before_reset_ = 0;
  simdjson::dom::parser json_parser_;  // shared by every decoder of this thread
  pipeline::Dispatcher dispatcher_;
  // Who is subscribed to what, on this shard (daemon/pubsub). Before the
  // connections: it holds pointers to them, and goes after them.
  pubsub::ChannelTable channels_;
  // [pubsub] bridge: this shard's channels across hosts (null without one).
  // After the table: what it receives is published there. Its counters as
  // they were at the last stats reset.
  std::unique_ptr<pubsub::RedisBridge> bridge_;
  pubsub::BridgeStats bridge_stats_before_reset_;

  // Every requester (connection or endpoint) by id: where deferred replies
  // and resumed bodies are routed. Declared before the requesters, so it
  // outlives them: an endpoint removes itself when it is destroyed.
  std::uint64_t next_requester_id_ = 1;
  std::unordered_map<std::uint64_t, RequesterTarget*> requesters_;

  // The configured listeners, in config order, and those a reload removed
  // that still finish what they started.
  std::vector<std::unique_ptr<ServedListener>> listeners_;
  std::vector<std::unique_ptr<ServedListener>> retired_;
  std::unordered_map<std::uint64_t, std::unique_ptr<StreamConnection>> connections_;
  // http clients apart: they do not hold up a shutdown.
  std::unordered_map<std::uint64_t, std::unique_ptr<HttpConnection>> http_connections_;
  reactor::TimerId sweep_timer_ = 0;
  // What the connections held at the last sweep (stats' bytes_buffered).
  std::uint64_t connection_bytes_buffered_ = 0;
  // At the next kept upload's resume_window (expire_partial_uploads_on_time).
  reactor::TimerId partial_expiry_timer_ = 0;
  // Connections with events to send at the end of this loop iteration, by
  // id: one closed meanwhile is not found, and skipped.
  std::vector<std::uint64_t> flush_queue_;

  bool shutting_down_ = false;
  bool closing_http_ = false;  // the drain is over: http connections go too
  bool reported_drained_ = false;       // told the group this shard's drain is over
  bool every_reactor_drained_ = false;  // the group says every shard's is
  bool finished_ = false;               // told the group (or stopped the reactor) once
  reactor::TimerId shutdown_timer_ = 0;
  std::uint64_t replies_before_drain_ = 0;

  // Connections' places in their listener's per-address counts
  // (max_connections_per_ip), by connection id.
  std::unordered_map<std::uint64_t, auth::AddressSlot> address_slots_;

  RateLimitedLog warnings_;
  RateLimitedLog client_errors_;
};

}  // namespace framed::server
