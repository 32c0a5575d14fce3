#pragma once
// Creating the sockets framed listens on. Every fd is SOCK_CLOEXEC (no child
// of exec may inherit a listener) and SOCK_NONBLOCK (the reactor never
// blocks). Errors are values: a message fit for the operator, naming the
// address and the reason.

#include <sys/types.h>

#include <string>

#include "base/unique_fd.hpp"
#include "net/socket_address.hpp"

namespace framed::net {

struct BindResult {
  base::UniqueFd fd;
  std::string error;  // empty on success
};

// reuse_port: SO_REUSEPORT, for one socket per reactor on one address (the
// kernel spreads connections and datagrams over them). Off by default: with
// it, a second daemon started by mistake would share the port silently
// instead of failing to bind.
enum class PortSharing { exclusive, reuse_port };

// TCP: SO_REUSEADDR (restart while old connections sit in TIME_WAIT),
// IPV6_V6ONLY on IPv6 (so "[::]:9000" and "0.0.0.0:9000" can both be
// configured, as two listeners), then listen(backlog).
BindResult bind_tcp(const SocketAddress& address, int backlog, PortSharing sharing = PortSharing::exclusive);

// UDP: SO_REUSEADDR, IPV6_V6ONLY on IPv6.
BindResult bind_udp(const SocketAddress& address, PortSharing sharing = PortSharing::exclusive);

// Unix stream or datagram (type = SOCK_STREAM / SOCK_DGRAM). A socket file
// left by a dead process (nothing answers a connect) is replaced; a live one
// is an error, and so is any other kind of file at the path. The file gets
// `mode` (chmod after bind: the umask must not decide who may connect).
// Abstract names ("@name") have no file and no mode.
BindResult bind_unix(const SocketAddress& address, int type, mode_t mode, int backlog);

// Sets TCP_NODELAY on an accepted TCP socket: replies are whole frames,
// written once, and Nagle would only delay them. Harmless on other families.
void set_no_delay(int fd);

}  // namespace framed::net
