#include "server/listener_plan.hpp"

namespace framed::server {
namespace {

enum class SocketKind { tcp, udp, unix_stream, unix_dgram };

SocketKind socket_kind(config::ListenerKind kind) noexcept {
  switch (kind) {
    case config::ListenerKind::tcp:
    case config::ListenerKind::http: return SocketKind::tcp;
    case config::ListenerKind::udp: return SocketKind::udp;
    case config::ListenerKind::unix_stream: return SocketKind::unix_stream;
    case config::ListenerKind::unix_dgram: return SocketKind::unix_dgram;
  }
  return SocketKind::tcp;
}

}  // namespace

bool same_socket(const config::Listener& a, const config::Listener& b) noexcept {
  const SocketKind kind = socket_kind(a.kind);
  if (kind != socket_kind(b.kind)) return false;
  const bool unix_socket = kind == SocketKind::unix_stream || kind == SocketKind::unix_dgram;
  return unix_socket ? a.path == b.path : a.address == b.address;
}

ListenerPlan plan_listeners(const std::vector<ListenerInPlace>& old_listeners,
                            const std::vector<config::Listener>& new_listeners) {
  ListenerPlan plan;
  plan.steps.resize(new_listeners.size());
  std::vector<bool> taken(old_listeners.size(), false);
  const auto take = [&](std::size_t new_index, std::size_t old_index) {
    taken[old_index] = true;
    plan.steps[new_index].keeps = old_index;
    plan.steps[new_index].unchanged = *old_listeners[old_index].config == new_listeners[new_index];
  };
  // By name first, then by address: a listener that is both renamed and
  // moved is a new one.
  for (std::size_t n = 0; n < new_listeners.size(); ++n) {
    for (std::size_t o = 0; o < old_listeners.size(); ++o) {
      if (taken[o] || old_listeners[o].config->name != new_listeners[n].name) continue;
      if (same_socket(*old_listeners[o].config, new_listeners[n])) take(n, o);
      break;  // names are unique: no other old listener has it
    }
  }
  for (std::size_t n = 0; n < new_listeners.size(); ++n) {
    if (plan.steps[n].keeps) continue;
    for (std::size_t o = 0; o < old_listeners.size(); ++o) {
      if (!taken[o] && same_socket(*old_listeners[o].config, new_listeners[n])) {
        take(n, o);
        break;
      }
    }
  }
  for (std::size_t o = 0; o < old_listeners.size(); ++o) {
    if (taken[o]) continue;
    (old_listeners[o].from_systemd ? plan.kept_from_systemd : plan.stopped).push_back(o);
  }
  return plan;
}

}  // namespace framed::server
