#pragma once
// What a connection needs to know about the listener that accepted it. Held
// by shared_ptr<const>: a connection keeps the settings it was accepted
// under, so a reload changes only connections accepted after it.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/address_counts.hpp"
#include "codec/frame_decoder.hpp"
#include "config/config.hpp"
#include "codec/framing.hpp"
#include "server/stats.hpp"
#include "transport/tls_context.hpp"

namespace framed::server {

struct ListenerSettings {
  std::string name;
  std::string kind;  // "tcp", "udp", "unix", "unix_dgram", "http": for stats and logs
  bool speaks_http = false;  // an http listener: no framing, HttpConnection
  codec::WireFormat format;
  codec::FrameLimits frame_limits;
  std::chrono::nanoseconds idle_timeout{};
  std::chrono::nanoseconds header_timeout{};
  std::chrono::nanoseconds body_timeout{};
  std::uint64_t min_body_rate = 0;  // bytes that move the body deadline 1 s later; 0: it never moves
  std::uint32_t max_pending_replies = 1024;
  std::uint64_t max_event_backlog = 8ULL << 20;
  std::optional<std::string> forced_command;
  // The exec commands this listener may run; absent: every configured one.
  std::optional<std::vector<std::string>> allow_commands;
  // Token or certificate: a client is a principal before it may do anything.
  config::ListenerAuth auth = config::ListenerAuth::none;
  std::uint32_t max_connections_per_ip = 0;  // 0: no limit
  // Connections open per source address (max_connections_per_ip); kept
  // across a reload like the counters, so those open still count.
  std::shared_ptr<auth::AddressCounts> address_counts = std::make_shared<auth::AddressCounts>();
  // Set: connections speak TLS with this context (the one loaded when these
  // settings were made; a reload makes new settings with a new context).
  std::shared_ptr<const transport::TlsServerContext> tls;
  // Per-listener counters; shared with the listener so they outlive a
  // connection and show in stats while the listener exists.
  std::shared_ptr<TrafficStats> stats = std::make_shared<TrafficStats>();
};

}  // namespace framed::server
