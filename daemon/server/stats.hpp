#pragma once
// Counters for `stats`. Plain integers: every one is written and read on the
// reactor thread only.

#include <array>
#include <cstdint>

#include "proto/error_code.hpp"

namespace framed::server {

struct TrafficStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_active = 0;
  std::uint64_t connections_rejected = 0;  // max_connections reached
  std::uint64_t frames_in = 0;             // requests decoded
  std::uint64_t replies_out = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t datagrams_in = 0;
  std::uint64_t datagrams_out = 0;
  std::array<std::uint64_t, proto::kErrorCodeCount> errors{};  // replies by error code

  void count_error(proto::ErrorCode code) { ++errors[static_cast<std::size_t>(code)]; }
};

struct ServerStats {
  TrafficStats total;
  std::uint64_t idle_timeouts = 0;
  std::uint64_t header_timeouts = 0;
  std::uint64_t accept_errors = 0;      // accept failures other than fd exhaustion
  std::uint64_t accept_fd_exhausted = 0;  // EMFILE/ENFILE/ENOBUFS/ENOMEM: accepting paused
  std::uint64_t reload_failures = 0;
};

}  // namespace framed::server
