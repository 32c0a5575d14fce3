#pragma once
// The server: every listener and connection of the daemon, the command
// registry and the counters, wired to one reactor.
//
// Ownership: the server owns listeners, datagram endpoints and connections
// (by unique_ptr); they hold a reference back to it. A connection that has
// closed is destroyed from a deferred function, after the callback that
// closed it has returned.
//
// Reactor thread only.

#include <simdjson.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.hpp"
#include "commands/command.hpp"
#include "commands/exec.hpp"
#include "config/config.hpp"
#include "exec/worker_pool.hpp"
#include "reactor/reactor.hpp"
#include "server/datagram_endpoint.hpp"
#include "server/socket_activation.hpp"
#include "server/stats.hpp"
#include "server/stream_connection.hpp"
#include "server/stream_listener.hpp"

namespace framed::server {

class Server {
 public:
  Server(reactor::Reactor& reactor, const config::Config& config);
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (or adopts from socket activation) every listener and starts
  // accepting. Returns every error; on any error nothing is left bound.
  std::vector<std::string> start(std::vector<ActivatedSocket> activated);

  // SIGTERM/SIGINT: stop accepting, answer what was received, flush, close;
  // stop the reactor when the last connection is gone or after
  // daemon.shutdown_timeout (then dropping what is left, with a log line).
  void begin_shutdown();

  [[nodiscard]] reactor::Reactor& reactor() noexcept { return reactor_; }
  [[nodiscard]] ServerStats& stats() noexcept { return stats_; }
  [[nodiscard]] commands::CommandRegistry& commands() noexcept { return commands_; }
  [[nodiscard]] const config::Config& config() const noexcept { return config_; }
  // The blocking work (exec). Its workers hold a reference to this server
  // and post results to its reactor: ~Server shuts it down (cancelling and
  // joining them) before anything else is destroyed.
  [[nodiscard]] exec::WorkerPool& worker_pool() noexcept { return worker_pool_; }
  [[nodiscard]] commands::ExecStatsTable& exec_stats() noexcept { return exec_stats_; }
  [[nodiscard]] simdjson::dom::parser& json_parser() noexcept { return json_parser_; }
  [[nodiscard]] base::TimePoint started_at() const noexcept { return started_at_; }
  [[nodiscard]] const std::vector<std::unique_ptr<StreamListener>>& stream_listeners() const noexcept {
    return stream_listeners_;
  }
  [[nodiscard]] const std::vector<std::unique_ptr<DatagramEndpoint>>& datagram_endpoints() const noexcept {
    return datagram_endpoints_;
  }

  // From StreamListener: a new client. Applies max_connections.
  void on_accepted(StreamListener& listener, base::UniqueFd fd);
  // From StreamConnection, once its fd is closed.
  void on_connection_closed(StreamConnection& connection);

  // From DatagramEndpoint, once it has stopped during shutdown.
  void on_endpoint_stopped() { maybe_finish_shutdown(); }

  // Ids for connections and datagram endpoints: the requesters that
  // deferred replies are routed to.
  [[nodiscard]] std::uint64_t next_requester_id() noexcept { return next_requester_id_++; }
  void add_reply_target(std::uint64_t id, ReplyTarget& target) { reply_targets_[id] = &target; }
  void remove_reply_target(std::uint64_t id) { reply_targets_.erase(id); }
  // A deferred command's answer (reactor thread). Dropped, with a debug
  // line, when its requester has gone meanwhile.
  void deliver_reply(const commands::ReplyRoute& route, proto::Reply& reply);

  // A warning that may repeat in a tight loop (EMFILE): logged at most once
  // per kWarningInterval, with the count of those suppressed.
  void warn_rate_limited(const std::string& message);
  // A datagram client's protocol error, at debug, rate-limited the same way:
  // a flood of garbage must not flood the journal.
  void note_client_error(const std::string& listener, const sockaddr_storage& peer, const proto::Reply& reply);

 private:
  std::vector<std::string> add_listener(const config::Listener& config, ActivatedSocket* adopted);
  void schedule_sweep();
  void sweep();
  void maybe_finish_shutdown();

  reactor::Reactor& reactor_;
  const config::Config& config_;
  ServerStats stats_;
  commands::CommandRegistry commands_;
  simdjson::dom::parser json_parser_;
  base::TimePoint started_at_;

  std::vector<std::unique_ptr<StreamListener>> stream_listeners_;
  std::vector<std::unique_ptr<DatagramEndpoint>> datagram_endpoints_;
  std::unordered_map<std::uint64_t, std::unique_ptr<StreamConnection>> connections_;
  std::uint64_t next_requester_id_ = 1;
  std::unordered_map<std::uint64_t, ReplyTarget*> reply_targets_;
  reactor::TimerId sweep_timer_ = 0;

  bool shutting_down_ = false;
  reactor::TimerId shutdown_timer_ = 0;

  commands::ExecStatsTable exec_stats_;
  // Shut down (workers joined) in ~Server's body, before any member goes.
  exec::WorkerPool worker_pool_;

  base::TimePoint last_warning_{};
  std::uint64_t suppressed_warnings_ = 0;
  base::TimePoint last_client_error_log_{};
  std::uint64_t suppressed_client_errors_ = 0;
};

}  // namespace framed::server
