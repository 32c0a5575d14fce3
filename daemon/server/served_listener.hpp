#pragma once
// One listener as a shard serves it: what it was configured as, whether
// systemd passed its socket, and the object that serves it — a stream
// listener (tcp, unix, http) or a datagram endpoint (udp, unix_dgram).

#include <memory>

#include "config/config.hpp"
#include "server/datagram_endpoint.hpp"
#include "server/stream_listener.hpp"

namespace framed::server {

struct ServedListener {
  config::Listener config;  // as configured, or the defaults an unmatched systemd socket is served with
  bool from_systemd = false;
  std::unique_ptr<StreamListener> stream;      // exactly one of the two is set
  std::unique_ptr<DatagramEndpoint> datagram;

  [[nodiscard]] const std::shared_ptr<const ListenerSettings>& settings() const noexcept {
    return stream ? stream->settings() : datagram->settings();
  }
  void start() { stream ? stream->start() : datagram->start(); }
  void stop() { stream ? stream->stop() : datagram->stop(); }
  [[nodiscard]] bool stopped() const noexcept { return stream ? stream->stopped() : datagram->stopped(); }
  // Stopped, and no connection it accepted is still open: it can go.
  [[nodiscard]] bool finished() const noexcept { return stopped() && settings()->stats->connections_active == 0; }
};

}  // namespace framed::server
