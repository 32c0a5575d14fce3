#pragma once
// What a reload does to the listeners: which configured listener keeps
// which open socket, which must be bound, which stop. Pure: it looks at two
// lists of configured listeners and decides; the shard carries it out.
//
// A new listener keeps the socket of an old one with the same name and the
// same address (or path), else of an old one with the same address under
// another name (a rename): clients never see the socket close. Otherwise
// it is bound afresh. An old listener that no new one takes stops, except a
// socket systemd passed: the daemon cannot re-create it, so it stays.
//
// Sockets are compatible when the kernel object is the same kind: a tcp
// listener may become an http one on the same port and back.

#include <cstddef>
#include <optional>
#include <vector>

#include "config/config.hpp"

namespace framed::server {

struct ListenerInPlace {
  const config::Listener* config = nullptr;
  bool from_systemd = false;
};

struct ListenerPlan {
  struct Step {
    // Where the listener's socket comes from: an old listener's (its index
    // in the old list), or nullopt: bind it.
    std::optional<std::size_t> keeps;
    // keeps, and every setting is the same: nothing to do at all.
    bool unchanged = false;
  };
  std::vector<Step> steps;           // one per new listener, in order
  std::vector<std::size_t> stopped;  // old listeners that stop, by index
  std::vector<std::size_t> kept_from_systemd;  // old, unmatched, passed by systemd: still served
};

ListenerPlan plan_listeners(const std::vector<ListenerInPlace>& old_listeners,
                            const std::vector<config::Listener>& new_listeners);

// The same socket: compatible kinds and the same address or path as written.
[[nodiscard]] bool same_socket(const config::Listener& a, const config::Listener& b) noexcept;

}  // namespace framed::server
