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
#include "server/shard_group.hpp"

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

Shard::Shard(reactor::Reactor& reactor, Daemon& daemon, ShardGroup* group, unsigned index)
    : reactor_(reactor),
      daemon_(daemon),
      group_(group),
      index_(index),
      config_(daemon.config_snapshot()),
      principals_(daemon.principals()),
      command_stats_(daemon.commands().all().size()),
      dispatcher_(*this, command_stats_),
      channels_(reactor),
      warnings_(spdlog::level::warn, kWarningInterval),
      client_errors_(spdlog::level::debug, kClientErrorInterval) {
  // Ids apart per reactor, so that a log line's connection id names one
  // connection in the whole daemon.
  next_requester_id_ = (std::uint64_t{index} << 48) + 1;
  for (const auto& [name, command] : config_->commands) exec_stats_.try_emplace(name);
  // The bridge is the first reactor's (one pair of connections to Redis
  // for the daemon); what it receives goes to every reactor's subscribers.
  if (const auto& endpoint = config_->pubsub.bridge; endpoint && index_ == 0) {
    pubsub::BridgeConfig bridge{*endpoint, config_->pubsub.bridge_prefix};
    // Another host's message is published here as a local one is, answering
    // nobody; it is not forwarded again.
    bridge_ = std::make_unique<pubsub::RedisBridge>(
        reactor_, std::move(bridge), [this](std::string_view channel, std::string_view message) {
          publish(channel, message, [](std::size_t /*receivers*/) {});
        });
  }
}

// Workers hold a reference to this shard (their results are posted to it):
// they are stopped and joined before anything here goes.
Shard::~Shard() {
  // The first reactor's thread owns the pool; the others' shards go after
  // it is stopped (SiblingReactors).
  if (index_ == 0) daemon_.stop_workers();
}

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
      case config::ListenerKind::http: bound = net::bind_tcp(*address, listener.backlog, port_sharing()); break;
      case config::ListenerKind::udp: bound = net::bind_udp(*address, port_sharing()); break;
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

  return make_served(listener, std::move(bound.fd), *address, adopted != nullptr, make_settings(listener),
                     std::move(socket_file));
}

std::unique_ptr<ServedListener> Shard::make_served(const config::Listener& listener, base::UniqueFd fd,
                                                   const net::SocketAddress& address, bool from_systemd,
                                                   std::shared_ptr<ListenerSettings> settings,
                                                   net::SocketFile socket_file) {
  // Every reactor serves every listener: the first one says so.
  const auto level = index_ == 0 ? spdlog::level::info : spdlog::level::debug;
  SPDLOG_LOGGER_CALL(spdlog::default_logger_raw(), level, "listening on {} {} ({}{}{}){}", settings->kind,
                     address.to_string(), listener.name, from_systemd ? ", from systemd" : "",
                     listener.command ? ", command = " + *listener.command : std::string(), reactor_label());
  if (settings->tls && index_ == 0) {
    // kTLS is not used: records are encrypted and decrypted by OpenSSL here.
    SPDLOG_INFO("{}: TLS in userspace ({}), certificate sha256 {}{}", listener.name, transport::openssl_version_text(),
                settings->tls->fingerprint(),
                settings->tls->requires_client_certificate() ? ", client certificates required" : "");
  }
  auto served = std::make_unique<ServedListener>();
  served->config = listener;
  served->from_systemd = from_systemd;
  if (is_stream(listener.kind)) {
    served->stream = std::make_unique<StreamListener>(reactor_, *this, std::move(fd), std::move(settings), address,
                                                      std::move(socket_file));
  } else {
    served->datagram = std::make_unique<DatagramEndpoint>(reactor_, *this, dispatcher_, json_parser_, std::move(fd),
                                                          std::move(settings), address, std::move(socket_file));
  }
  return served;
}

net::PortSharing Shard::port_sharing() const noexcept {
  return group_ != nullptr && group_->size() > 1 ? net::PortSharing::reuse_port : net::PortSharing::exclusive;
}

std::string Shard::reactor_label() const {
  return group_ != nullptr ? " [reactor " + std::to_string(index_) + "]" : std::string();
}

std::optional<SiblingListener> Shard::sibling_of(const ServedListener& served, std::string& error) const {
  SiblingListener sibling;
  sibling.config = served.config;
  sibling.from_systemd = served.from_systemd;
  sibling.address_counts = served.settings()->address_counts;
  sibling.address = served.stream ? served.stream->address() : served.datagram->address();
  const config::ListenerKind kind = served.config.kind;
  if (served.from_systemd || is_unix(kind)) {
    // One socket for all: a Unix path names one socket, and systemd passed one.
    sibling.fd = served.stream ? served.stream->duplicate_socket() : served.datagram->duplicate_socket();
    if (!sibling.fd) {
      error = served.config.name + ": cannot duplicate its socket for another reactor: " + base::errno_text(errno);
      return std::nullopt;
    }
    return sibling;
  }
  // A socket of its own on the address the first one has (the port the
  // kernel chose, where the config said 0), which the kernel balances with it.
  net::BindResult bound = kind == config::ListenerKind::udp
                              ? net::bind_udp(sibling.address, net::PortSharing::reuse_port)
                              : net::bind_tcp(sibling.address, served.config.backlog, net::PortSharing::reuse_port);
  if (!bound.fd) {
    error = served.config.name + ": for another reactor: " + bound.error;
    return std::nullopt;
  }
  sibling.fd = std::move(bound.fd);
  return sibling;
}

std::vector<std::string> Shard::siblings_of_listeners(std::vector<SiblingListener>& out) const {
  std::vector<std::string> errors;
  for (const auto& served : listeners_) {
    std::string error;
    if (auto sibling = sibling_of(*served, error)) {
      out.push_back(std::move(*sibling));
    } else {
      errors.push_back(std::move(error));
    }
  }
  return errors;
}

std::unique_ptr<ServedListener> Shard::serve_sibling(SiblingListener sibling) {
  auto settings = make_settings(sibling.config);
  settings->address_counts = std::move(sibling.address_counts);
  return make_served(sibling.config, std::move(sibling.fd), sibling.address, sibling.from_systemd,
                     std::move(settings), net::SocketFile());
}

std::vector<std::string> Shard::start_as_sibling(std::vector<SiblingListener> siblings) {
  for (SiblingListener& sibling : siblings) listeners_.push_back(serve_sibling(std::move(sibling)));
  for (auto& served : listeners_) served->start();
  return {};
}

std::vector<std::string> Shard::reload(config::Config next) {
  const ListenerPlan plan = plan_listeners(listeners_in_place(), next.listeners);

  // Everything that can fail comes first: binding the new sockets, for
  // this reactor and for every other one.
  std::vector<std::unique_ptr<ServedListener>> bound(next.listeners.size());
  std::vector<std::string> errors;
  for (std::size_t i = 0; i < next.listeners.size(); ++i) {
    if (plan.steps[i].keeps) continue;
    std::string error;
    bound[i] = bind_listener(next.listeners[i], nullptr, error);
    if (!bound[i]) errors.push_back(std::move(error));
  }
  if (!errors.empty()) return errors;  // what was bound closes here; nothing else changed
  const unsigned reactors = group_ != nullptr ? group_->size() : 1;
  // [reactor - 1][listener]: the sockets each other reactor serves a new listener with.
  std::vector<std::vector<std::optional<SiblingListener>>> handed(reactors - 1);
  for (auto& for_reactor : handed) {
    for_reactor.resize(next.listeners.size());
    for (std::size_t i = 0; i < next.listeners.size(); ++i) {
      if (!bound[i]) continue;
      std::string error;
      for_reactor[i] = sibling_of(*bound[i], error);
      if (!for_reactor[i]) errors.push_back(std::move(error));
    }
  }
  if (!errors.empty()) return errors;

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
  if (next.daemon.reactors != config().daemon.reactors || next.daemon.pin_reactors != config().daemon.pin_reactors) {
    SPDLOG_WARN("reload: daemon.reactors or daemon.pin_reactors changed: it takes effect at the next start ({} "
                "reactor(s) until then)",
                reactors);
  }
  apply_listener_plan(plan, next.listeners, bound);
  daemon_.replace_config(std::move(next));
  adopt_config(daemon_.config_snapshot(), daemon_.principals());
  for (unsigned other = 1; other < reactors; ++other) {
    // std::function must be copyable: the sockets travel in a shared_ptr.
    auto sockets = std::make_shared<std::vector<std::optional<SiblingListener>>>(std::move(handed[other - 1]));
    group_->post(other, [shard = &group_->shard(other), config = config_, principals = principals_, sockets] {
      shard->follow_reload(config, principals, std::move(*sockets));
    });
  }
  return {};
}

std::vector<ListenerInPlace> Shard::listeners_in_place() const {
  std::vector<ListenerInPlace> in_place;
  for (const auto& served : listeners_) in_place.push_back({&served->config, served->from_systemd});
  return in_place;
}

void Shard::follow_reload(std::shared_ptr<const config::Config> next,
                          std::shared_ptr<const auth::PrincipalTable> principals,
                          std::vector<std::optional<SiblingListener>> added) {
  // The same listeners as the first reactor's, so the same plan.
  const ListenerPlan plan = plan_listeners(listeners_in_place(), next->listeners);
  std::vector<std::unique_ptr<ServedListener>> bound(next->listeners.size());
  for (std::size_t i = 0; i < next->listeners.size(); ++i) {
    if (plan.steps[i].keeps) continue;
    if (i < added.size() && added[i]) {
      bound[i] = serve_sibling(std::move(*added[i]));
    } else {
      SPDLOG_ERROR("reload: {} has no socket for reactor {}: it is not served there", next->listeners[i].name,
                   index_);
    }
  }
  apply_listener_plan(plan, next->listeners, bound);
  adopt_config(std::move(next), std::move(principals));
}

void Shard::adopt_config(std::shared_ptr<const config::Config> next,
                         std::shared_ptr<const auth::PrincipalTable> principals) {
  config_ = std::move(next);
  principals_ = std::move(principals);
  for (const auto& [name, command] : config_->commands) exec_stats_.try_emplace(name);
  release_retired();
}

void Shard::apply_listener_plan(const ListenerPlan& plan, const std::vector<config::Listener>& next,
                                std::vector<std::unique_ptr<ServedListener>>& bound) {
  std::vector<std::unique_ptr<ServedListener>> old = std::move(listeners_);
  listeners_.clear();
  for (std::size_t i = 0; i < next.size(); ++i) {
    const ListenerPlan::Step& step = plan.steps[i];
    if (!step.keeps) {
      if (!bound[i]) continue;
      listeners_.push_back(std::move(bound[i]));
      listeners_.back()->start();
      continue;
    }
    std::unique_ptr<ServedListener>& kept = old[*step.keeps];
    if (!step.unchanged) update_listener(*kept, next[i]);
    listeners_.push_back(std::move(kept));
  }
  for (const std::size_t index : plan.kept_from_systemd) listeners_.push_back(std::move(old[index]));
  for (const std::size_t index : plan.stopped) {
    ServedListener& served = *old[index];
    if (index_ == 0) {
      SPDLOG_INFO("reload: {} stops accepting; its {} open connection(s){} stay until they close", served.config.name,
                  served.settings()->stats->connections_active, group_ != nullptr ? " on reactor 0" : "");
    }
    served.stop();
    retired_.push_back(std::move(old[index]));
  }
}

void Shard::update_listener(ServedListener& served, const config::Listener& listener) {
  const auto level = index_ == 0 ? spdlog::level::info : spdlog::level::debug;
  SPDLOG_LOGGER_CALL(spdlog::default_logger_raw(), level, "reload: {}{} takes new settings for the connections it accepts from now on", listener.name,
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
  std::string text = std::to_string(daemon_.connections_open());
  text.append(" connection(s) open on ").append(std::to_string(listeners_.size())).append(" listener(s)");
  if (group_ != nullptr) text.append(", ").append(std::to_string(group_->size())).append(" reactors");
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
  // Counted here, for every reactor at once: the limit is exact even when
  // reactors accept at the same moment. Given back if it is not served.
  if (!daemon_.try_open_connection(config().daemon.max_connections)) {
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
        daemon_.connection_closed();
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
    daemon_.connection_closed();
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
  daemon_.connection_closed();
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
  daemon_.connection_closed();
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
  snapshot.config_path = config_->source;
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
  snapshot.reactors.push_back(ReactorSnapshot{index_, snapshot.total});
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
  reset_own_counters();
  daemon_.reset_counters();
}

void Shard::reset_own_counters() {
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
  SPDLOG_INFO("shutting down: {} connection(s) to finish{}", connections_.size(), reactor_label());
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
    // Several reactors: /healthz says 503 until every one has drained, so
    // this one's http clients wait for the others (every_reactor_drained).
    if (group_ != nullptr && !every_reactor_drained_) {
      if (!reported_drained_) {
        reported_drained_ = true;
        group_->shard_drained();
      }
      return;
    }
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
  if (finished_) return;
  finished_ = true;
  SPDLOG_INFO("answered {} requests while draining{}", replies_out() - replies_before_drain_, reactor_label());
  // Every reactor keeps running until all have finished: a publish or a
  // stats request on one still asks the others.
  if (bridge_) bridge_->stop();
  if (group_ != nullptr) return group_->shard_finished();
  reactor_.stop();
}

void Shard::every_reactor_drained() {
  every_reactor_drained_ = true;
  maybe_finish_shutdown();
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

std::optional<std::size_t> Shard::publish(std::string_view channel, std::string_view message,
                                          std::function<void(std::size_t receivers)> done) {
  if (group_ == nullptr || group_->size() == 1) return channels_.publish(channel, message, std::move(done));
  // Every reactor's table gets the message through its post queue, all of
  // them under one lock (ShardGroup::post_everywhere_in_order): two
  // publishes from two reactors reach every reactor in the same order, so
  // every subscriber of a channel sees one order. The publisher's own
  // reactor takes its turn in that queue too. The counts come back here.
  struct Tally {
    unsigned waiting;
    std::size_t receivers = 0;
    std::function<void(std::size_t)> done;
  };
  auto tally = std::make_shared<Tally>(Tally{group_->size(), 0, std::move(done)});  // touched on this thread only
  auto text = std::make_shared<const std::pair<std::string, std::string>>(channel, message);
  ShardGroup* group = group_;
  const unsigned origin = index_;
  group_->post_everywhere_in_order([&](unsigned index) -> std::function<void()> {
    return [group, index, origin, tally, text] {
      const auto count_back = [group, origin, tally](std::size_t receivers) {
        group->post(origin, [tally, receivers] {
          tally->receivers += receivers;
          if (--tally->waiting == 0) tally->done(tally->receivers);
        });
      };
      if (const auto receivers = group->shard(index).channels_.publish(text->first, text->second, count_back)) {
        count_back(*receivers);
      }
    };
  });
  return std::nullopt;
}

std::optional<StatsSnapshot> Shard::gather_stats(bool reset, StatsReady later) {
  if (group_ == nullptr || group_->size() == 1) {
    StatsSnapshot snapshot = stats();
    if (reset) reset_stats();
    return snapshot;
  }
  // Each reactor copies its counters on its own thread (and zeroes them
  // there, in the same step, for a reset); the shares come back here, and
  // are added up once the last one has.
  struct Gathering {
    std::vector<std::shared_ptr<StatsSnapshot>> shares;
    unsigned waiting;
    StatsReady ready;
  };
  const unsigned reactors = group_->size();
  auto gathering = std::make_shared<Gathering>(
      Gathering{std::vector<std::shared_ptr<StatsSnapshot>>(reactors), reactors, std::move(later)});
  ShardGroup* group = group_;
  const unsigned origin = index_;
  for (unsigned index = 0; index < reactors; ++index) {
    group_->post(index, [group, index, origin, reset, gathering] {
      Shard& shard = group->shard(index);
      auto share = std::make_shared<StatsSnapshot>(shard.stats());
      if (reset) shard.reset_own_counters();
      group->post(origin, [group, index, origin, reset, gathering, share = std::move(share)] {
        gathering->shares[index] = share;
        if (--gathering->waiting != 0) return;
        Shard& here = group->shard(origin);
        if (reset) here.daemon_.reset_counters();
        // The process-wide figures are the first reactor's copy of them.
        StatsSnapshot sum = std::move(*gathering->shares[0]);
        for (unsigned other = 1; other < gathering->shares.size(); ++other) {
          add_reactor_share(sum, *gathering->shares[other]);
        }
        gathering->ready(sum);
      });
    });
  }
  return std::nullopt;
}

std::optional<StatsSnapshot> Shard::stats_for(std::uint64_t id) {
  return gather_stats(false, [this, id](const StatsSnapshot& stats) {
    if (const auto it = http_connections_.find(id); it != http_connections_.end()) it->second->stats_ready(stats);
  });
}

void Shard::forward_publish(std::string_view channel, std::string_view message) {
  if (!config_->pubsub.bridge) return;
  if (index_ == 0 || group_ == nullptr) {
    if (bridge_) bridge_->forward(channel, message);
    return;
  }
  group_->post(0, [first = &group_->shard(0), channel = std::string(channel), message = std::string(message)] {
    first->forward_publish(channel, message);
  });
}

}  // namespace framed::server
