#pragma once
// systemd socket activation (sd_listen_fds(3), without libsystemd): the
// sockets systemd opened for us, passed as fds 3.. with LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES.

#include <string>
#include <vector>

#include "base/unique_fd.hpp"
#include "net/socket_address.hpp"

namespace framed::server {

struct ActivatedSocket {
  base::UniqueFd fd;
  std::string name;  // its LISTEN_FDNAMES entry ("" when none was given)
  int type = 0;      // SOCK_STREAM or SOCK_DGRAM
  net::SocketAddress address;
};

// Takes the passed sockets (once: the variables are removed from the
// environment so no child inherits them) and marks them CLOEXEC and
// non-blocking. Returns an empty list when LISTEN_PID is not this process.
std::vector<ActivatedSocket> take_activated_sockets();

}  // namespace framed::server
