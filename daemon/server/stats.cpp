#include "server/stats.hpp"

namespace framed::server {

TrafficStats& TrafficStats::operator+=(const TrafficStats& other) noexcept {
  connections_accepted += other.connections_accepted;
  connections_active += other.connections_active;
  connections_rejected += other.connections_rejected;
  frames_in += other.frames_in;
  replies_out += other.replies_out;
  bytes_in += other.bytes_in;
  bytes_out += other.bytes_out;
  datagrams_in += other.datagrams_in;
  datagrams_out += other.datagrams_out;
  for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += other.errors[i];
  return *this;
}

ShardStats& ShardStats::operator+=(const ShardStats& other) noexcept {
  idle_timeouts += other.idle_timeouts;
  header_timeouts += other.header_timeouts;
  accept_errors += other.accept_errors;
  accept_fd_exhausted += other.accept_fd_exhausted;
  slow_subscribers += other.slow_subscribers;
  return *this;
}

}  // namespace framed::server
