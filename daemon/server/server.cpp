#include "server/server.hpp"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/un.h>

#include <cstring>

#include "net/bind.hpp"

namespace framed::server {
namespace {

// How often connection deadlines (idle_timeout, header_timeout, lingering
// closes) are checked: 10 times a second, as Redis's serverCron does. The
// sweep costs nanoseconds per connection and runs only while any exist.
constexpr auto kSweepInterval = std::chrono::milliseconds(100);
constexpr auto kWarningInterval = std::chrono::seconds(10);

codec::FrameFormat wire_format(const config::Listener& listener) {
  switch (listener.framing) {
    case config::Framing::json: return codec::FrameFormat::json;
    case config::Framing::length: return codec::FrameFormat::length;
    case config::Framing::line: return codec::FrameFormat::line;
    case config::Framing::datagram:
      return listener.payload == config::Payload::json ? codec::FrameFormat::datagram_json
                                                       : codec::FrameFormat::datagram_text;
  }
  return codec::FrameFormat::json;
}

std::string_view kind_name(config::ListenerKind kind) {
  switch (kind) {
    case config::ListenerKind::tcp: return "tcp";
    case config::ListenerKind::udp: return "udp";
    case config::ListenerKind::unix_stream: return "unix";
    case config::ListenerKind::unix_dgram: return "unix_dgram";
  }
  return "tcp";
}

std::shared_ptr<ListenerSettings> make_settings(const config::Listener& listener) {
  auto settings = std::make_shared<ListenerSettings>();
  settings->name = listener.name;
  settings->kind = std::string(kind_name(listener.kind));
  settings->format = wire_format(listener);
  settings->byte_order = listener.byte_order == config::ByteOrder::little ? codec::ByteOrder::little
                                                                          : codec::ByteOrder::big;
  settings->frame_limits = codec::FrameLimits{listener.limits.max_header, listener.limits.max_body};
  settings->idle_timeout = listener.limits.idle_timeout;
  settings->header_timeout = listener.limits.header_timeout;
  settings->max_pending_replies = listener.limits.max_pending_replies;
  settings->forced_command = listener.command;
  settings->allow_commands = listener.allow_commands;
  return settings;
}

bool same_address(const net::SocketAddress& a, const net::SocketAddress& b) {
  if (a.family() != b.family()) return false;
  if (a.family() == AF_INET) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(&a.storage);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b.storage);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.family() == AF_INET6) {
    const auto* x = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    const auto* y = reinterpret_cast<const sockaddr_in6*>(&b.storage);
    return x->sin6_port == y->sin6_port && std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return a.to_string() == b.to_string();
}

bool is_stream(config::ListenerKind kind) {
  return kind == config::ListenerKind::tcp || kind == config::ListenerKind::unix_stream;
}

bool is_unix(config::ListenerKind kind) {
  return kind == config::ListenerKind::unix_stream || kind == config::ListenerKind::unix_dgram;
}

std::optional<net::SocketAddress> configured_address(const config::Listener& listener) {
  return is_unix(listener.kind) ? net::SocketAddress::unix_path(listener.path)
                                : net::SocketAddress::parse_inet(listener.address);
}

}  // namespace

Server::Server(reactor::Reactor& reactor, const config::Config& config)
    : reactor_(reactor), config_(config), started_at_(base::Clock::now()),
      worker_pool_(config.daemon.max_queued_jobs) {
  commands::register_basic_commands(commands_);
  commands::register_introspection_commands(commands_);
  commands::register_exec_command(commands_);
  const unsigned workers = config.daemon.workers != 0 ? config.daemon.workers : exec::available_cpus();
  if (const std::error_code error = worker_pool_.resize(workers)) {
    SPDLOG_ERROR("worker pool: could start only {} of {} threads: {}", worker_pool_.threads(), workers,
                 error.message());
  }
  SPDLOG_INFO("worker pool: {} threads, up to {} jobs queued; {} exec command(s) configured",
              worker_pool_.threads(), config.daemon.max_queued_jobs, config.commands.size());
  for (const auto& [name, command] : config.commands) exec_stats_.try_emplace(name);
}

Server::~Server() {
  // Before anything a job refers to goes: queued jobs are dropped, running
  // commands are killed (cancel_fd) and their workers joined. Their results,
  // posted to a reactor that no longer runs, are never delivered.
  if (const unsigned busy = worker_pool_.busy(); busy != 0) {
    SPDLOG_WARN("stopping: killing {} command(s) still running", busy);
  }
  worker_pool_.shutdown();
}

std::vector<std::string> Server::start(std::vector<ActivatedSocket> activated) {
  std::vector<std::string> errors;
  for (const config::Listener& listener : config_.listeners) {
    const std::optional<net::SocketAddress> address = configured_address(listener);
    ActivatedSocket* adopted = nullptr;
    for (ActivatedSocket& socket : activated) {
      if (socket.fd && !socket.name.empty() && socket.name == listener.name) adopted = &socket;
    }
    for (ActivatedSocket& socket : activated) {
      if (adopted == nullptr && socket.fd && address && same_address(socket.address, *address)) adopted = &socket;
    }
    auto listener_errors = add_listener(listener, adopted);
    errors.insert(errors.end(), listener_errors.begin(), listener_errors.end());
  }
  for (ActivatedSocket& socket : activated) {
    if (!socket.fd) continue;
    // A socket systemd passed that no [[listener]] describes: serve it with
    // its kind's defaults rather than leave clients hanging.
    config::Listener defaults;
    const bool unix_socket = socket.address.family() == AF_UNIX;
    if (socket.type == SOCK_DGRAM) {
      defaults.kind = unix_socket ? config::ListenerKind::unix_dgram : config::ListenerKind::udp;
      defaults.framing = config::Framing::datagram;
    } else {
      defaults.kind = unix_socket ? config::ListenerKind::unix_stream : config::ListenerKind::tcp;
    }
    defaults.limits = config_.limits;
    defaults.name = std::string(kind_name(defaults.kind)) + ":" + socket.address.to_string();
    SPDLOG_INFO("socket {} passed by systemd matches no [[listener]]: serving it with {} defaults",
                socket.name.empty() ? socket.address.to_string() : socket.name, kind_name(defaults.kind));
    auto listener_errors = add_listener(defaults, &socket);
    errors.insert(errors.end(), listener_errors.begin(), listener_errors.end());
  }
  if (stream_listeners_.empty() && datagram_endpoints_.empty() && errors.empty()) {
    errors.emplace_back("no listener: the config has no [[listener]] and systemd passed no socket");
  }
  if (!errors.empty()) {
    stream_listeners_.clear();
    datagram_endpoints_.clear();
    return errors;
  }
  for (auto& listener : stream_listeners_) listener->start();
  for (auto& endpoint : datagram_endpoints_) endpoint->start();
  return errors;
}

std::vector<std::string> Server::add_listener(const config::Listener& listener, ActivatedSocket* adopted) {
  std::optional<net::SocketAddress> address = configured_address(listener);
  if (adopted != nullptr) address = adopted->address;
  if (!address) return {listener.name + ": invalid address"};

  net::BindResult bound;
  net::SocketFile socket_file;  // the file of a Unix socket we bound, removed with the listener
  if (adopted != nullptr) {
    bound.fd = std::move(adopted->fd);
  } else {
    switch (listener.kind) {
      case config::ListenerKind::tcp: bound = net::bind_tcp(*address, listener.backlog); break;
      case config::ListenerKind::udp: bound = net::bind_udp(*address); break;
      case config::ListenerKind::unix_stream:
        bound = net::bind_unix(*address, SOCK_STREAM, listener.mode, listener.backlog);
        if (bound.fd) socket_file = net::SocketFile(*address);
        break;
      case config::ListenerKind::unix_dgram:
        bound = net::bind_unix(*address, SOCK_DGRAM, listener.mode, listener.backlog);
        if (bound.fd) socket_file = net::SocketFile(*address);
        break;
    }
    if (!bound.fd) return {listener.name + ": " + bound.error};
    // Port 0 asks the kernel for a free port: log the one it chose.
    if (auto local = net::local_address(bound.fd.get()); local && !is_unix(listener.kind)) address = *local;
  }

  auto settings = make_settings(listener);
  SPDLOG_INFO("listening on {} {} ({}{}{})", settings->kind, address->to_string(), listener.name,
              adopted != nullptr ? ", from systemd" : "",
              listener.command ? ", command = " + *listener.command : std::string());
  if (is_stream(listener.kind)) {
    stream_listeners_.push_back(
        std::make_unique<StreamListener>(*this, std::move(bound.fd), std::move(settings), *address, std::move(socket_file)));
  } else {
    datagram_endpoints_.push_back(
        std::make_unique<DatagramEndpoint>(*this, std::move(bound.fd), std::move(settings), *address, std::move(socket_file)));
  }
  return {};
}

void Server::on_accepted(StreamListener& listener, base::UniqueFd fd) {
  const auto& settings = listener.settings();
  if (shutting_down_) return;
  if (stats_.total.connections_active >= config_.daemon.max_connections) {
    ++stats_.total.connections_rejected;
    ++settings->stats->connections_rejected;
    // Told why, then closed. One small non-blocking send on a fresh socket
    // never blocks; if it does not fit, the client only misses the reason.
    proto::Reply reply;
    reply.fail(proto::ErrorCode::too_busy, "max_connections reached, try again later");
    stats_.total.count_error(proto::ErrorCode::too_busy);
    buffer::ByteBuffer out(256);
    codec::ReplyEncoder(settings->format, settings->byte_order).encode(reply, out);
    [[maybe_unused]] const auto sent = ::send(fd.get(), out.read_ptr(), out.readable_size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    warn_rate_limited("max_connections (" + std::to_string(config_.daemon.max_connections) +
                      ") reached: refusing new connections");
    return;
  }
  if (listener.address().family() != AF_UNIX) net::set_no_delay(fd.get());
  std::string peer = "unix";
  net::SocketAddress peer_address;
  peer_address.length = sizeof peer_address.storage;
  if (::getpeername(fd.get(), peer_address.get(), &peer_address.length) == 0 && peer_address.family() != AF_UNIX) {
    peer = peer_address.to_string();
  }
  const std::uint64_t id = next_requester_id();
  auto connection = std::make_unique<StreamConnection>(*this, std::move(fd), settings, std::move(peer), id);
  SPDLOG_DEBUG("connection {} from {} on {}", id, connection->peer(), settings->name);
  ++stats_.total.connections_accepted;
  ++stats_.total.connections_active;
  ++settings->stats->connections_accepted;
  ++settings->stats->connections_active;
  StreamConnection& started = *connection;
  add_reply_target(id, started);
  connections_.emplace(id, std::move(connection));
  started.start();
  schedule_sweep();
}

void Server::on_connection_closed(StreamConnection& connection) {
  SPDLOG_DEBUG("connection {} from {} closed", connection.id(), connection.peer());
  --stats_.total.connections_active;
  --connection.listener_stats().connections_active;
  remove_reply_target(connection.id());
  // Destroyed after the callback that closed it has returned.
  reactor_.defer([this, id = connection.id()] {
    connections_.erase(id);
    maybe_finish_shutdown();
  });
}

void Server::deliver_reply(const commands::ReplyRoute& route, proto::Reply& reply) {
  const auto it = reply_targets_.find(route.requester);
  if (it == reply_targets_.end()) {
    SPDLOG_DEBUG("a deferred reply for requester {} arrived after it had gone", route.requester);
    return;
  }
  it->second->deliver_deferred(route, reply);
}

void Server::schedule_sweep() {
  if (sweep_timer_ != 0 || connections_.empty()) return;
  sweep_timer_ = reactor_.add_timer(reactor_.now() + kSweepInterval, [this] {
    sweep_timer_ = 0;
    sweep();
    schedule_sweep();
  });
}

void Server::sweep() {
  const base::TimePoint now = reactor_.now();
  // check_timeouts may close a connection; destruction is deferred, so the
  // map is not modified while it is walked.
  for (auto& [id, connection] : connections_) connection->check_timeouts(now);
}

void Server::begin_shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  SPDLOG_INFO("shutting down: {} connection(s) to finish", connections_.size());
  for (auto& listener : stream_listeners_) listener->stop();
  for (auto& endpoint : datagram_endpoints_) endpoint->stop();
  for (auto& [id, connection] : connections_) connection->begin_drain();
  shutdown_timer_ = reactor_.add_timer(reactor_.now() + config_.daemon.shutdown_timeout, [this] {
    shutdown_timer_ = 0;
    SPDLOG_WARN("shutdown_timeout reached: closing {} connection(s) with work unfinished", connections_.size());
    // Each closes once its cancelled operations complete, and the last one
    // stops the reactor (maybe_finish_shutdown).
    for (auto& [id, connection] : connections_) connection->abort();
  });
  reactor_.defer([this] { maybe_finish_shutdown(); });
}

void Server::maybe_finish_shutdown() {
  if (!shutting_down_ || !connections_.empty()) return;
  for (const auto& endpoint : datagram_endpoints_) {
    if (!endpoint->stopped()) return;
  }
  if (shutdown_timer_ != 0) {
    reactor_.cancel_timer(shutdown_timer_);
    shutdown_timer_ = 0;
  }
  reactor_.stop();
}

void Server::warn_rate_limited(const std::string& message) {
  const base::TimePoint now = reactor_.now();
  if (last_warning_ != base::TimePoint{} && now - last_warning_ < kWarningInterval) {
    ++suppressed_warnings_;
    return;
  }
  if (suppressed_warnings_ != 0) {
    SPDLOG_WARN("{} ({} similar warnings suppressed)", message, suppressed_warnings_);
  } else {
    SPDLOG_WARN("{}", message);
  }
  suppressed_warnings_ = 0;
  last_warning_ = now;
}

void Server::note_client_error(const std::string& listener, const sockaddr_storage& peer, const proto::Reply& reply) {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  const base::TimePoint now = reactor_.now();
  if (last_client_error_log_ != base::TimePoint{} && now - last_client_error_log_ < std::chrono::seconds(1)) {
    ++suppressed_client_errors_;
    return;
  }
  net::SocketAddress address;
  std::memcpy(&address.storage, &peer, sizeof peer);
  address.length = sizeof peer;
  SPDLOG_DEBUG("{}: datagram from {}: {}: {}{}", listener, address.to_string(), proto::to_string(reply.error_code),
               reply.error_message,
               suppressed_client_errors_ != 0 ? " (" + std::to_string(suppressed_client_errors_) + " more suppressed)"
                                              : std::string());
  suppressed_client_errors_ = 0;
  last_client_error_log_ = now;
}

}  // namespace framed::server
