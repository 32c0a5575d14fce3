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
// Reactor thread only, except CommandHost::post.

#include <simdjson.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/address_counts.hpp"
#include "auth/rate_buckets.hpp"
#include "commands/command.hpp"
#include "commands/exec.hpp"
#include "pipeline/dispatcher.hpp"
#include "pubsub/channel_table.hpp"
#include "pubsub/redis_bridge.hpp"
#include "reactor/reactor.hpp"
#include "server/daemon.hpp"
#include "server/datagram_endpoint.hpp"
#include "server/http_connection.hpp"
#include "server/rate_limited_log.hpp"
#include "server/served_listener.hpp"
#include "server/socket_activation.hpp"
#include "server/stats.hpp"
#include "server/stream_connection.hpp"
#include "server/stream_listener.hpp"

namespace framed::server {

class Shard final : public commands::CommandHost,
                    public StreamListener::Owner,
                    public StreamConnection::Owner,
                    public HttpConnection::Owner,
                    public DatagramEndpoint::Owner {
 public:
  Shard(reactor::Reactor& reactor, Daemon& daemon);
  ~Shard();

  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Binds (or adopts from socket activation) every listener and starts
  // accepting. Returns every error; on any error nothing is left bound.
  std::vector<std::string> start(std::vector<ActivatedSocket> activated);

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
  // on any error nothing changed.
  std::vector<std::string> reload(config::Config next);
  [[nodiscard]] bool shutting_down() const noexcept { return shutting_down_; }
  // One line for systemd's STATUS=: connections and listeners.
  [[nodiscard]] std::string status_text() const;

  // commands::CommandHost
  [[nodiscard]] const config::Config& config() const noexcept override { return daemon_.config(); }
  [[nodiscard]] const commands::CommandRegistry& commands() const noexcept override { return daemon_.commands(); }
  [[nodiscard]] exec::WorkerPool& worker_pool() noexcept override { return daemon_.worker_pool(); }
  void post(std::function<void()> fn) override { reactor_.post(std::move(fn)); }
  void deliver_reply(const commands::ReplyRoute& route, proto::Reply& reply) override;
  void resume_body(const commands::ReplyRoute& route) override;
  bool push_event(std::uint64_t requester, std::string_view fields, std::string_view body) override;
  [[nodiscard]] pubsub::ChannelTable& channels() noexcept override { return channels_; }
  [[nodiscard]] pubsub::Subscriber* subscriber(std::uint64_t requester) noexcept override;
  void forward_publish(std::string_view channel, std::string_view message) override {
    if (bridge_) bridge_->forward(channel, message);
  }
  [[nodiscard]] commands::ExecStats& exec_stats(std::string_view name) override;
  [[nodiscard]] commands::FileStats& file_stats() noexcept override { return file_stats_; }
  [[nodiscard]] commands::PartialUploads& partial_uploads() noexcept override { return daemon_.partial_uploads(); }
  void expire_partial_uploads_on_time() override;
  [[nodiscard]] StatsSnapshot stats() const override;
  void reset_stats() override;
  [[nodiscard]] base::TimePoint now() noexcept override { return reactor_.now(); }
  void warn_rate_limited(const std::string& message) override { warnings_.warn(reactor_.now(), message); }
  void run_at(base::TimePoint deadline, std::function<void()> fn) override {
    reactor_.add_timer(deadline, std::move(fn));
  }
  [[nodiscard]] const std::shared_ptr<const auth::PrincipalTable>& principals() const noexcept override {
    return daemon_.principals();
  }
  [[nodiscard]] auth::RateBuckets& rate_buckets() noexcept override { return rate_buckets_; }

  // StreamListener::Owner
  void on_accepted(StreamListener& listener, base::UniqueFd fd) override;
  void on_accept_failed(StreamListener& listener, int error, bool fd_exhausted) override;

  // StreamConnection::Owner
  void on_connection_closed(StreamConnection& connection) override;
  void on_timeout(TimeoutKind kind) override;
  void on_slow_consumer(StreamConnection& connection) override;
  void flush_soon(StreamConnection& connection) override;

  // HttpConnection::Owner (stats() and on_timeout() are above)
  void on_http_connection_closed(HttpConnection& connection) override;
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
  reactor::TimerId shutdown_timer_ = 0;
  std::uint64_t replies_before_drain_ = 0;

  // Each principal's request rate on this shard.
  auth::RateBuckets rate_buckets_;
  // Connections' places in their listener's per-address counts
  // (max_connections_per_ip), by connection id.
  std::unordered_map<std::uint64_t, auth::AddressSlot> address_slots_;

  RateLimitedLog warnings_;
  RateLimitedLog client_errors_;
};

}  // namespace framed::server
