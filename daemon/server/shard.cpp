#include "server/shard.hpp"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>
#include <new>

#include "base/errno_text.hpp"
#include "codec/reply_encoder.hpp"
#include "commands/partial_uploads.hpp"
#include "exec/orphan_reaper.hpp"
#include "server/exec_containment.hpp"
#include "net/bind.hpp"
#include "server/listener_plan.hpp"

namespace framed::server {
namespace {

// How often connection deadlines (idle_timeout, header_timeout, body_timeout, lingering
// closes) are checked: 10 times a second, as Redis's serverCron does. The
// sweep costs nanoseconds per connection and runs only while any exist.
constexpr auto kSweepInterval = std::chrono::milliseconds(100);
constexpr auto kWarningInterval = std::chrono::seconds(10);
constexpr auto kClientErrorInterval = std::chrono::seconds(1);

std::string_view kind_name(config::ListenerKind kind) {
  switch (kind) {
    case config::ListenerKind::tcp: return "tcp";
    case config::ListenerKind::udp: return "udp";
    case config::ListenerKind::unix_stream: return "unix";
    case config::ListenerKind::unix_dgram: return "unix_dgram";
    case config::ListenerKind::http: return "http";
  }
  return "tcp";
}

// `stats`: the counters of the listener these settings replace, so a reload
// never resets them; null for a new listener.
// `previous`: the settings these replace (a reload), whose counters and
// per-address counts carry over; null for a new listener.
std::shared_ptr<ListenerSettings> make_settings(const config::Listener& listener,
                                                const ListenerSettings* previous = nullptr) {
  auto settings = std::make_shared<ListenerSettings>();
  settings->name = listener.name;
  settings->kind = std::string(kind_name(listener.kind));
  settings->speaks_http = listener.kind == config::ListenerKind::http;
  settings->format = listener.wire_format();
  settings->frame_limits = codec::FrameLimits{listener.limits.max_header, listener.limits.max_body};
  settings->idle_timeout = listener.limits.idle_timeout;
  settings->header_timeout = listener.limits.header_timeout;
  settings->body_timeout = listener.limits.body_timeout;
  settings->min_body_rate = listener.limits.min_body_rate;
  settings->max_pending_replies = listener.limits.max_pending_replies;
  settings->max_event_backlog = listener.limits.max_event_backlog;
  settings->forced_command = listener.command;
  settings->allow_commands = listener.allow_commands;
  settings->auth = listener.auth;
  settings->max_connections_per_ip = listener.max_connections_per_ip;
  settings->tls = listener.tls_context;
  if (previous != nullptr) {
    settings->stats = previous->stats;
    settings->address_counts = previous->address_counts;
  }
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
  return kind == config::ListenerKind::tcp || kind == config::ListenerKind::unix_stream ||
         kind == config::ListenerKind::http;
}

bool is_unix(config::ListenerKind kind) {
  return kind == config::ListenerKind::unix_stream || kind == config::ListenerKind::unix_dgram;
}

std::optional<net::SocketAddress> configured_address(const config::Listener& listener) {
  return is_unix(listener.kind) ? net::SocketAddress::unix_path(listener.path)
                                : net::SocketAddress::parse_inet(listener.address);
}

}  // namespace

Shard::Shard(reactor::Reactor& reactor, Daemon& daemon)
    : reactor_(reactor),
      daemon_(daemon),
      command_stats_(daemon.commands().all().size()),
      dispatcher_(*this, command_stats_),
      channels_(reactor),
      warnings_(spdlog::level::warn, kWarningInterval),
      client_errors_(spdlog::level::debug, kClientErrorInterval) {
  for (const auto& [name, command] : daemon.config().commands) exec_stats_.try_emplace(name);
  if (const auto& endpoint = daemon.config().pubsub.bridge) {
    pubsub::BridgeConfig bridge{*endpoint, daemon.config().pubsub.bridge_prefix};
    // Another host's message is published here as a local one is, answering
    // nobody; it is not forwarded again.
    bridge_ = std::make_unique<pubsub::RedisBridge>(
        reactor_, std::move(bridge), [this](std::string_view channel, std::string_view message) {
          channels_.publish(channel, message, [](std::size_t /*receivers*/) {});
        });
  }
}

// Workers hold a reference to this shard (their results are posted to it):
// they are stopped and joined before anything here goes.
Shard::~Shard() { daemon_.stop_workers(); }

std::vector<std::string> Shard::start(std::vector<ActivatedSocket> activated) {
  std::vector<std::string> errors;
  const auto add = [&](const config::Listener& listener, ActivatedSocket* adopted) {
    std::string error;
    auto served = bind_listener(listener, adopted, error);
    if (served) {
      listeners_.push_back(std::move(served));
    } else {
      errors.push_back(std::move(error));
    }
  };
  for (const config::Listener& listener : config().listeners) {
    const std::optional<net::SocketAddress> address = configured_address(listener);
    ActivatedSocket* adopted = nullptr;
    for (ActivatedSocket& socket : activated) {
      if (socket.fd && !socket.name.empty() && socket.name == listener.name) adopted = &socket;
    }
    for (ActivatedSocket& socket : activated) {
      if (adopted == nullptr && socket.fd && address && same_address(socket.address, *address)) adopted = &socket;
    }
    add(listener, adopted);
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
    (unix_socket ? defaults.path : defaults.address) = socket.address.to_string();
    defaults.limits = config().limits;
    defaults.name = std::string(kind_name(defaults.kind)) + ":" + socket.address.to_string();
    SPDLOG_INFO("socket {} passed by systemd matches no [[listener]]: serving it with {} defaults",
                socket.name.empty() ? socket.address.to_string() : socket.name, kind_name(defaults.kind));
    add(defaults, &socket);
  }
  if (listeners_.empty() && errors.empty()) {
    errors.emplace_back("no listener: the config has no [[listener]] and systemd passed no socket");
  }
  if (!errors.empty()) {
    listeners_.clear();
    return errors;
  }
  for (auto& served : listeners_) served->start();
  if (bridge_) bridge_->start();
  return errors;
}

std::unique_ptr<ServedListener> Shard::bind_listener(const config::Listener& listener, ActivatedSocket* adopted,
                                                     std::string& error) {
  std::optional<net::SocketAddress> address = configured_address(listener);
  if (adopted != nullptr) address = adopted->address;
  if (!address) {
    error = listener.name + ": invalid address";
    return nullptr;
  }

  net::BindResult bound;
  net::SocketFile socket_file;  // the file of a Unix socket we bound, removed with the listener
  if (adopted != nullptr) {
    bound.fd = std::move(adopted->fd);
  } else {
    switch (listener.kind) {
      case config::ListenerKind::tcp:
      case config::ListenerKind::http: bound = net::bind_tcp(*address, listener.backlog); break;
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
    if (!bound.fd) {
      error = listener.name + ": " + bound.error;
      return nullptr;
    }
    // Port 0 asks the kernel for a free port: log the one it chose.
    if (auto local = net::local_address(bound.fd.get()); local && !is_unix(listener.kind)) address = *local;
  }

  auto settings = make_settings(listener);
  SPDLOG_INFO("listening on {} {} ({}{}{})", settings->kind, address->to_string(), listener.name,
              adopted != nullptr ? ", from systemd" : "",
              listener.command ? ", command = " + *listener.command : std::string());
  if (settings->tls) {
    // kTLS is not used: records are encrypted and decrypted by OpenSSL here.
    SPDLOG_INFO("{}: TLS in userspace ({}), certificate sha256 {}{}", listener.name, transport::openssl_version_text(),
                settings->tls->fingerprint(),
                settings->tls->requires_client_certificate() ? ", client certificates required" : "");
  }
  auto served = std::make_unique<ServedListener>();
  served->config = listener;
  served->from_systemd = adopted != nullptr;
  if (is_stream(listener.kind)) {
    served->stream = std::make_unique<StreamListener>(reactor_, *this, std::move(bound.fd), std::move(settings),
                                                      *address, std::move(socket_file));
  } else {
    served->datagram = std::make_unique<DatagramEndpoint>(reactor_, *this, dispatcher_, json_parser_, std::move(bound.fd),
                                                          std::move(settings), *address, std::move(socket_file));
  }
  return served;
}

std::vector<std::string> Shard::reload(config::Config next) {
  std::vector<ListenerInPlace> in_place;
  for (const auto& served : listeners_) in_place.push_back({&served->config, served->from_systemd});
  const ListenerPlan plan = plan_listeners(in_place, next.listeners);

  // Everything that can fail comes first: binding the new sockets.
  std::vector<std::unique_ptr<ServedListener>> bound(next.listeners.size());
  std::vector<std::string> errors;
  for (std::size_t i = 0; i < next.listeners.size(); ++i) {
    if (plan.steps[i].keeps) continue;
    std::string error;
    bound[i] = bind_listener(next.listeners[i], nullptr, error);
    if (!bound[i]) errors.push_back(std::move(error));
  }
  if (!errors.empty()) return errors;  // what was bound closes here; nothing else changed

  if (next.daemon.exec_containment != config().daemon.exec_containment) {
    SPDLOG_WARN("reload: daemon.exec_containment changed: it takes effect at the next start ({} until then)",
                exec_containment_in_use());
  }
  if (next.pubsub != config().pubsub) {
    SPDLOG_WARN("reload: [pubsub] changed: it takes effect at the next start (bridge {} until then)",
                config().pubsub.bridge ? "to " + config().pubsub.bridge->url() : std::string("off"));
  }
  if (next.daemon.backend != config().daemon.backend) {
    SPDLOG_WARN("reload: daemon.backend changed: it takes effect at the next start (running on {} until then)",
                reactor_.backend_name());
  }
  std::vector<std::unique_ptr<ServedListener>> old = std::move(listeners_);
  listeners_.clear();
  for (std::size_t i = 0; i < next.listeners.size(); ++i) {
    const ListenerPlan::Step& step = plan.steps[i];
    if (!step.keeps) {
      listeners_.push_back(std::move(bound[i]));
      listeners_.back()->start();
      continue;
    }
    std::unique_ptr<ServedListener>& kept = old[*step.keeps];
    if (!step.unchanged) update_listener(*kept, next.listeners[i]);
    listeners_.push_back(std::move(kept));
  }
  for (const std::size_t index : plan.kept_from_systemd) listeners_.push_back(std::move(old[index]));
  for (const std::size_t index : plan.stopped) {
    ServedListener& served = *old[index];
    SPDLOG_INFO("reload: {} stops accepting; its {} open connection(s) stay until they close", served.config.name,
                served.settings()->stats->connections_active);
    served.stop();
    retired_.push_back(std::move(old[index]));
  }
  for (const auto& [name, command] : next.commands) exec_stats_.try_emplace(name);
  daemon_.replace_config(std::move(next));
  rate_buckets_.retain(*daemon_.principals());
  release_retired();
  return {};
}

void Shard::update_listener(ServedListener& served, const config::Listener& listener) {
  SPDLOG_INFO("reload: {}{} takes new settings for the connections it accepts from now on", listener.name,
              served.config.name != listener.name ? " (was " + served.config.name + ")" : std::string());
  auto settings = make_settings(listener, served.settings().get());
  if (served.stream) {
    if (listener.backlog != served.config.backlog) served.stream->set_backlog(listener.backlog);
    if (is_unix(listener.kind) && listener.mode != served.config.mode && !served.from_systemd &&
        !listener.path.starts_with('@') && ::chmod(listener.path.c_str(), listener.mode) != 0) {
      SPDLOG_WARN("reload: {}: cannot give {} mode {:o}: {}", listener.name, listener.path, listener.mode,
                  base::errno_text(errno));
    }
    served.stream->set_settings(std::move(settings));
  } else {
    // A datagram endpoint's pipeline is made for its settings: a new
    // endpoint serves the same socket (a second descriptor of it) and this
    // one answers what it has received, then closes its descriptor.
    DatagramEndpoint& current = *served.datagram;
    base::UniqueFd fd = current.duplicate_socket();
    if (!fd) {
      SPDLOG_ERROR("reload: {} keeps its old settings: cannot duplicate its socket: {}", listener.name,
                   base::errno_text(errno));
      return;
    }
    auto replacement = std::make_unique<ServedListener>();
    replacement->config = served.config;
    replacement->from_systemd = served.from_systemd;
    replacement->datagram = std::move(served.datagram);
    served.datagram = std::make_unique<DatagramEndpoint>(reactor_, *this, dispatcher_, json_parser_, std::move(fd),
                                                         std::move(settings), current.address(),
                                                         current.take_socket_file());
    served.datagram->start();
    replacement->stop();
    retired_.push_back(std::move(replacement));
  }
  served.config = listener;
}

std::string Shard::status_text() const {
  std::string text = std::to_string(open_connections());
  text.append(" connection(s) open on ").append(std::to_string(listeners_.size())).append(" listener(s)");
  if (!retired_.empty()) text.append(", ").append(std::to_string(retired_.size())).append(" removed and finishing");
  text.append("; config generation ").append(std::to_string(daemon_.config_generation()));
  return text;
}

void Shard::release_retired() {
  std::erase_if(retired_, [](const std::unique_ptr<ServedListener>& served) { return served->finished(); });
}

void Shard::on_accepted(StreamListener& listener, base::UniqueFd fd) {
  const auto& settings = listener.settings();
  // While draining, http listeners still accept: /healthz tells the 503.
  if (shutting_down_ && (!settings->speaks_http || closing_http_)) return;
  if (open_connections() >= config().daemon.max_connections) {
    ++settings->stats->connections_rejected;
    refuse_connection(*settings, fd, "max_connections reached, try again later");
    if (settings->speaks_http) return;
    warn_rate_limited("max_connections (" + std::to_string(config().daemon.max_connections) +
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
  const std::uint64_t id = next_requester_id_++;
  if (settings->max_connections_per_ip != 0) {
    if (auto key = auth::AddressCounts::key_of(peer_address.storage)) {
      if (!settings->address_counts->try_add(*key, settings->max_connections_per_ip)) {
        ++settings->stats->connections_rejected_per_ip;
        std::string reason("max_connections_per_ip (");
        reason.append(std::to_string(settings->max_connections_per_ip)).append(") reached for ");
        reason.append(peer.substr(0, peer.rfind(':')));
        refuse_connection(*settings, fd, reason);
        warn_rate_limited(reason + " on " + settings->name + ": refusing its new connections");
        return;
      }
      address_slots_.emplace(id, auth::AddressSlot(settings->address_counts, std::move(*key)));
    }
  }
  try {
    if (settings->speaks_http) return accept_http(settings, std::move(fd), std::move(peer), id);
    auto connection = std::make_unique<StreamConnection>(reactor_, *this, dispatcher_, json_parser_, std::move(fd),
                                                         settings, std::move(peer), id, daemon_.buffer_budget());
    StreamConnection& started = *connection;
    requesters_.emplace(id, &started);
    try {
      connections_.emplace(id, std::move(connection));
    } catch (const std::bad_alloc&) {
      requesters_.erase(id);
      throw;
    }
    SPDLOG_DEBUG("connection {} from {} on {}", id, started.peer(), settings->name);
    ++settings->stats->connections_accepted;
    ++settings->stats->connections_active;
    started.start();
    schedule_sweep();
  } catch (const std::bad_alloc&) {
    // Out of memory for one more connection: it is closed as it unwinds,
    // leaving nothing registered; the reactor counts the failure and the
    // listener goes on accepting.
    address_slots_.erase(id);
    throw;
  }
}

void Shard::refuse_connection(const ListenerSettings& settings, const base::UniqueFd& fd, std::string_view reason) {
  // Told why, then closed. One small non-blocking send on a fresh socket
  // never blocks; if it does not fit, the client only misses the reason.
  buffer::ByteBuffer out(256);
  if (settings.speaks_http) {
    std::string response = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: ";
    response.append(std::to_string(reason.size() + 1)).append("\r\nConnection: close\r\n\r\n");
    response.append(reason).append("\n");
    out.append(response);
  } else {
    proto::Reply reply;
    reply.fail(proto::ErrorCode::too_busy, reason);
    settings.stats->count_error(proto::ErrorCode::too_busy);
    codec::ReplyEncoder(settings.format).encode(reply, out);
  }
  [[maybe_unused]] const auto sent = ::send(fd.get(), out.read_ptr(), out.readable_size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

std::uint64_t Shard::open_connections() const noexcept {
  // Each listener counts its own; the shard's figure is their sum, not a
  // second counter kept alongside.
  std::uint64_t open = 0;
  for_each_served([&open](const ServedListener& served) { open += served.settings()->stats->connections_active; });
  return open;
}

void Shard::on_connection_closed(StreamConnection& connection) {
  SPDLOG_DEBUG("connection {} from {} closed", connection.id(), connection.peer());
  --connection.listener_stats().connections_active;
  address_slots_.erase(connection.id());
  requesters_.erase(connection.id());
  channels_.remove(connection.id());
  // Destroyed after the callback that closed it has returned.
  reactor_.defer([this, id = connection.id()] {
    connections_.erase(id);
    maybe_finish_shutdown();
  });
}

void Shard::accept_http(const std::shared_ptr<const ListenerSettings>& settings, base::UniqueFd fd,
                        std::string peer, std::uint64_t id) {
  auto connection = std::make_unique<HttpConnection>(reactor_, *this, std::move(fd), settings, std::move(peer), id,
                                                     daemon_.buffer_budget());
  SPDLOG_DEBUG("http connection {} from {} on {}", id, connection->peer(), settings->name);
  ++settings->stats->connections_accepted;
  ++settings->stats->connections_active;
  HttpConnection& started = *connection;
  http_connections_.emplace(id, std::move(connection));
  started.start();
  schedule_sweep();
}

void Shard::on_http_connection_closed(HttpConnection& connection) {
  SPDLOG_DEBUG("http connection {} from {} closed", connection.id(), connection.peer());
  --connection.listener_stats().connections_active;
  address_slots_.erase(connection.id());
  reactor_.defer([this, id = connection.id()] {
    http_connections_.erase(id);
    maybe_finish_shutdown();
  });
}

void Shard::on_accept_failed(StreamListener& listener, int error, bool fd_exhausted) {
  if (fd_exhausted) {
    ++shard_stats_.accept_fd_exhausted;
    warn_rate_limited("accept on " + listener.settings()->name + " paused: " + base::errno_text(error));
  } else {
    ++shard_stats_.accept_errors;
    SPDLOG_WARN("accept on {} failed: {}", listener.settings()->name, base::errno_text(error));
  }
}

void Shard::on_slow_consumer(StreamConnection& connection) {
  ++shard_stats_.slow_subscribers;
  // A connection that stops reading is the client's business; the count in
  // stats is the operator's signal, the log only a rate-limited hint.
  warn_rate_limited("connection " + std::to_string(connection.id()) + " from " + connection.peer() + " on " +
                    connection.listener_name() + " dropped as a slow subscriber (max_event_backlog)");
}

void Shard::flush_soon(StreamConnection& connection) {
  // Deferred functions run once this iteration's completions and posted
  // work are done, before the loop polls again.
  if (flush_queue_.empty()) {
    reactor_.defer([this] {
      std::vector<std::uint64_t> due;
      due.swap(flush_queue_);
      for (const std::uint64_t id : due) {
        if (const auto it = connections_.find(id); it != connections_.end()) it->second->flush_events();
      }
    });
  }
  flush_queue_.push_back(connection.id());
}

bool Shard::push_event(std::uint64_t requester, std::string_view fields, std::string_view body) {
  const auto it = connections_.find(requester);
  if (it == connections_.end()) return false;
  StreamConnection& connection = *it->second;
  buffer::ByteBuffer out(fields.size() + body.size() + 64);
  codec::ReplyEncoder(connection.event_format()).encode_event(fields, body, out);
  return connection.push_event(std::make_shared<const std::string>(out.readable()));
}

pubsub::Subscriber* Shard::subscriber(std::uint64_t requester) noexcept {
  const auto it = connections_.find(requester);
  if (it == connections_.end() || !it->second->open()) return nullptr;
  if (it->second->event_format().framing != codec::Framing::json) return nullptr;
  return it->second.get();
}

void Shard::on_timeout(TimeoutKind kind) {
  switch (kind) {
    case TimeoutKind::idle: ++shard_stats_.idle_timeouts; return;
    case TimeoutKind::header: ++shard_stats_.header_timeouts; return;
    case TimeoutKind::body: ++shard_stats_.body_timeouts; return;
  }
}

std::uint64_t Shard::add_requester(RequesterTarget& target) {
  const std::uint64_t id = next_requester_id_++;
  requesters_.emplace(id, &target);
  return id;
}

void Shard::deliver_reply(const commands::ReplyRoute& route, proto::Reply& reply) {
  const auto it = requesters_.find(route.requester);
  if (it == requesters_.end()) {
    SPDLOG_DEBUG("a deferred reply for requester {} arrived after it had gone", route.requester);
    return;
  }
  it->second->deliver(route, reply);
}

void Shard::resume_body(const commands::ReplyRoute& route) {
  if (const auto it = requesters_.find(route.requester); it != requesters_.end()) it->second->resume_body(route);
}

commands::ExecStats& Shard::exec_stats(std::string_view name) {
  if (const auto it = exec_stats_.find(name); it != exec_stats_.end()) return it->second;
  return exec_stats_.try_emplace(std::string(name)).first->second;
}

StatsSnapshot Shard::stats() const {
  StatsSnapshot snapshot;
  snapshot.backend = reactor_.backend_name();
  snapshot.uptime = std::chrono::duration_cast<std::chrono::seconds>(base::Clock::now() - daemon_.started_at());
  snapshot.process = read_process_stats();
  snapshot.config_path = daemon_.config().source;
  snapshot.shard = shard_stats_;
  snapshot.shard.allocation_failures = reactor_.allocation_failures() - allocation_failures_before_reset_;
  snapshot.buffer_memory = daemon_.buffer_budget().held();
  snapshot.max_buffered_total = daemon_.buffer_budget().limit();
  snapshot.reload_failures = daemon_.reload_failures();
  snapshot.config_generation = daemon_.config_generation();
  snapshot.config_loaded_unix =
      std::chrono::duration_cast<std::chrono::seconds>(daemon_.config_loaded_at().time_since_epoch()).count();
  snapshot.counters_since_unix =
      std::chrono::duration_cast<std::chrono::seconds>(daemon_.counters_since().time_since_epoch()).count();
  // The connections' share as the last sweep found it (at most
  // kSweepInterval old): a scrape never walks 10,000 connections.
  if (!connections_.empty() || !http_connections_.empty()) snapshot.bytes_buffered = connection_bytes_buffered_;
  for_each_served([&snapshot](const ServedListener& served) {
    if (served.datagram) snapshot.bytes_buffered += served.datagram->buffered_bytes();
  });
  exec::WorkerPool& pool = daemon_.worker_pool();
  snapshot.workers = pool.threads();
  snapshot.workers_busy = pool.busy();
  snapshot.jobs_queued = pool.queued();
  snapshot.exec_containment = exec_containment_in_use();
  snapshot.exec_orphans_killed = exec::orphans_killed() - orphans_killed_before_reset_;
  for_each_served([&snapshot](const ServedListener& served) {
    const ListenerSettings& settings = *served.settings();
    snapshot.listeners.push_back(ListenerSnapshot{settings.name, settings.kind, *settings.stats});
    snapshot.total += *settings.stats;
  });
  for (const auto& command : daemon_.commands().all()) {
    snapshot.commands.emplace_back(command->command->name(), command_stats_[command->index]);
  }
  for (const auto& [name, exec] : exec_stats_) snapshot.exec.emplace_back(name, exec);
  snapshot.files = file_stats_;
  snapshot.partials = daemon_.partial_uploads().counters();
  if (bridge_) {
    pubsub::BridgeStats bridge = bridge_->stats();
    bridge.published -= bridge_stats_before_reset_.published;
    bridge.received -= bridge_stats_before_reset_.received;
    bridge.dropped -= bridge_stats_before_reset_.dropped;
    bridge.reconnects -= bridge_stats_before_reset_.reconnects;
    snapshot.bridge = bridge;
  }
  return snapshot;
}

void Shard::reset_stats() {
  for_each_served([](const ServedListener& served) {
    TrafficStats& stats = *served.settings()->stats;
    const std::uint64_t active = stats.connections_active;
    stats = TrafficStats{};
    stats.connections_active = active;
  });
  shard_stats_ = ShardStats{};
  allocation_failures_before_reset_ = reactor_.allocation_failures();
  orphans_killed_before_reset_ = exec::orphans_killed();
  for (commands::CommandStats& command : command_stats_) command = commands::CommandStats{};
  for (auto& [name, exec] : exec_stats_) {
    const std::uint32_t active = exec.active;
    exec = commands::ExecStats{};
    exec.active = active;
  }
  file_stats_ = commands::FileStats{};
  if (bridge_) bridge_stats_before_reset_ = bridge_->stats();
  daemon_.reset_counters();
}

void Shard::expire_partial_uploads_on_time() {
  if (partial_expiry_timer_ != 0) reactor_.cancel_timer(partial_expiry_timer_);
  partial_expiry_timer_ = 0;
  // The policy of the config in force when the timer fires: a reload may
  // have changed resume_window meanwhile.
  const auto policy = [this]() -> std::optional<commands::PartialPolicy> {
    if (!config().files) return std::nullopt;
    return commands::PartialPolicy{config().files->resume_window, config().files->max_partials};
  };
  const std::optional<commands::PartialPolicy> now_policy = policy();
  if (!now_policy) return;
  const std::optional<base::TimePoint> deadline = daemon_.partial_uploads().next_expiry(*now_policy);
  if (!deadline) return;
  partial_expiry_timer_ = reactor_.add_timer(*deadline, [this, policy] {
    partial_expiry_timer_ = 0;
    if (const std::optional<commands::PartialPolicy> current = policy()) {
      commands::close_in_worker(*this, daemon_.partial_uploads().expire(*current, reactor_.now()));
    }
    expire_partial_uploads_on_time();  // the next oldest, if any
  });
}

void Shard::schedule_sweep() {
  if (sweep_timer_ != 0 || (connections_.empty() && http_connections_.empty())) return;
  sweep_timer_ = reactor_.add_timer(reactor_.now() + kSweepInterval, [this] {
    sweep_timer_ = 0;
    sweep();
    schedule_sweep();
  });
}

void Shard::sweep() {
  const base::TimePoint now = reactor_.now();
  // check_timeouts may close a connection; destruction is deferred, so the
  // map is not modified while it is walked.
  // The same walk samples what the connections hold, for stats' bytes_buffered.
  std::uint64_t buffered = 0;
  for (auto& [id, connection] : connections_) {
    connection->check_timeouts(now);
    buffered += connection->buffered_bytes();
  }
  for (auto& [id, connection] : http_connections_) {
    connection->check_timeouts(now);
    buffered += connection->buffered_bytes();
  }
  connection_bytes_buffered_ = buffered;
  enforce_buffer_budget();
  release_retired();
}

void Shard::enforce_buffer_budget() {
  buffer::MemoryBudget& budget = daemon_.buffer_budget();
  if (!budget.exhausted()) {
    for (auto& [id, connection] : connections_) {
      if (connection->budget_stalled()) connection->retry_reading();
    }
    for (auto& [id, connection] : http_connections_) {
      if (connection->budget_stalled()) connection->retry_reading();
    }
    return;
  }
  // Spent for a whole sweep interval: the connections that cannot go on
  // without more memory (a partial request waiting for room, replies their
  // client does not read) give theirs back, the largest first, until what
  // is left fits. Those that can go on keep going: they need nothing new.
  std::vector<std::pair<std::size_t, StreamConnection*>> stuck;
  for (auto& [id, connection] : connections_) {
    if (connection->open() && (connection->budget_stalled() || connection->replies_unread())) {
      stuck.emplace_back(connection->allocated_bytes(), connection.get());
    }
  }
  std::sort(stuck.begin(), stuck.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::size_t held = budget.held();
  for (const auto& [bytes, connection] : stuck) {
    if (held < budget.limit()) break;
    held -= std::min(held, bytes);
    ++shard_stats_.connections_shed_for_memory;
    SPDLOG_WARN("limits.max_buffered_total ({} bytes) reached: closing connection {} from {}, which holds {} bytes",
                budget.limit(), connection->id(), connection->peer(), bytes);
    connection->shed_for_memory();
  }
}

void Shard::begin_shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  replies_before_drain_ = replies_out();
  SPDLOG_INFO("shutting down: {} connection(s) to finish", connections_.size());
  for (auto& served : listeners_) {
    if (!served->settings()->speaks_http) served->stop();
  }
  // At the end of this batch of completions, not now: a recv that completed
  // in the same batch as the signal is delivered first, since its bytes have
  // left the kernel's queue, where the drain looks for what was received.
  reactor_.defer([this] {
    for (auto& [id, connection] : connections_) connection->begin_drain();
  });
  shutdown_timer_ = reactor_.add_timer(reactor_.now() + config().daemon.shutdown_timeout, [this] {
    shutdown_timer_ = 0;
    SPDLOG_WARN("shutdown_timeout reached: closing {} connection(s) with work unfinished", connections_.size());
    // Each closes once its cancelled operations complete, and the last one
    // stops the reactor (maybe_finish_shutdown).
    for (auto& [id, connection] : connections_) connection->abort();
    for (auto& [id, connection] : http_connections_) connection->abort();
  });
  reactor_.defer([this] { maybe_finish_shutdown(); });
}

void Shard::maybe_finish_shutdown() {
  if (!shutting_down_ || !connections_.empty()) return;
  for (const auto* list : {&listeners_, &retired_}) {
    for (const auto& served : *list) {
      if (served->datagram && !served->datagram->stopped()) return;
    }
  }
  if (!closing_http_) {
    // The drain is over: what answered /healthz with 503 meanwhile goes too.
    closing_http_ = true;
    for (auto& served : listeners_) served->stop();
    for (auto& [id, connection] : http_connections_) connection->abort();
  }
  if (!http_connections_.empty()) return;
  if (shutdown_timer_ != 0) {
    reactor_.cancel_timer(shutdown_timer_);
    shutdown_timer_ = 0;
  }
  SPDLOG_INFO("answered {} requests while draining", replies_out() - replies_before_drain_);
  if (bridge_) bridge_->stop();
  reactor_.stop();
}

std::uint64_t Shard::replies_out() const noexcept {
  std::uint64_t replies = 0;
  for_each_served([&replies](const ServedListener& served) {
    if (!served.settings()->speaks_http) replies += served.settings()->stats->replies_out;
  });
  return replies;
}

void Shard::note_client_error(const std::string& listener, const sockaddr_storage& peer, const proto::Reply& reply) {
  if (!client_errors_.may_write(reactor_.now())) return;
  net::SocketAddress address;
  std::memcpy(&address.storage, &peer, sizeof peer);
  address.length = sizeof peer;
  SPDLOG_DEBUG("{}: datagram from {}: {}: {}{}", listener, address.to_string(), proto::to_string(reply.error_code),
               reply.error_message, client_errors_.take_suppressed_note());
}

}  // namespace framed::server
