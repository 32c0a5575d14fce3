#include "net/bind.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

#include "base/errno_text.hpp"

namespace framed::net {
namespace {

BindResult fail(const SocketAddress& address, std::string_view what, int err) {
  return {base::UniqueFd(), "cannot " + std::string(what) + " " + address.to_string() + ": " + base::errno_text(err)};
}

constexpr int kOn = 1;

void set_int_option(int fd, int level, int name, int value) {
  ::setsockopt(fd, level, name, &value, sizeof value);
}

BindResult bind_inet(const SocketAddress& address, int type, PortSharing sharing) {
  base::UniqueFd fd(::socket(address.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail(address, "create a socket for", errno);
  set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  if (sharing == PortSharing::reuse_port) {
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &kOn, sizeof kOn) != 0) {
      return fail(address, "set SO_REUSEPORT on", errno);
    }
  }
  if (address.family() == AF_INET6) set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1);
  if (::bind(fd.get(), address.get(), address.length) != 0) return fail(address, "bind", errno);
  return {std::move(fd), {}};
}

// What sits at a Unix socket path: nothing, a dead socket, a live one, or
// something that is not a socket.
enum class PathState { absent, stale_socket, live_socket, not_a_socket, unknown };

PathState probe_unix_path(const SocketAddress& address, int type, const char* path) {
  struct stat info {};
  if (::lstat(path, &info) != 0) return errno == ENOENT ? PathState::absent : PathState::unknown;
  if (!S_ISSOCK(info.st_mode)) return PathState::not_a_socket;
  base::UniqueFd probe(::socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe) return PathState::unknown;
  if (::connect(probe.get(), address.get(), address.length) == 0) return PathState::live_socket;
  // EAGAIN: a live listener with a full backlog.
  if (errno == ECONNREFUSED) return PathState::stale_socket;
  return errno == EAGAIN ? PathState::live_socket : PathState::unknown;
}

}  // namespace

BindResult bind_tcp(const SocketAddress& address, int backlog, PortSharing sharing) {
  BindResult result = bind_inet(address, SOCK_STREAM, sharing);
  if (!result.fd) return result;
  if (::listen(result.fd.get(), backlog) != 0) return fail(address, "listen on", errno);
  return result;
}

BindResult bind_udp(const SocketAddress& address, PortSharing sharing) {
  return bind_inet(address, SOCK_DGRAM, sharing);
}

BindResult bind_unix(const SocketAddress& address, int type, mode_t mode, int backlog) {
  const auto* un = reinterpret_cast<const sockaddr_un*>(&address.storage);
  const bool abstract = un->sun_path[0] == '\0';
  if (!abstract) {
    switch (probe_unix_path(address, type, un->sun_path)) {
      case PathState::absent:
        break;
      case PathState::stale_socket:
        ::unlink(un->sun_path);
        break;
      case PathState::live_socket:
        return {base::UniqueFd(), "cannot bind " + address.to_string() + ": another process is listening there"};
      case PathState::not_a_socket:
        return {base::UniqueFd(), "cannot bind " + address.to_string() + ": the path exists and is not a socket"};
      case PathState::unknown:
        break;  // bind() below reports the real reason
    }
  }
  base::UniqueFd fd(::socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail(address, "create a socket for", errno);
  if (::bind(fd.get(), address.get(), address.length) != 0) return fail(address, "bind", errno);
  if (!abstract && ::chmod(un->sun_path, mode) != 0) {
    const int err = errno;
    ::unlink(un->sun_path);
    return fail(address, "set the mode of", err);
  }
  if (type == SOCK_STREAM && ::listen(fd.get(), backlog) != 0) {
    const int err = errno;
    if (!abstract) ::unlink(un->sun_path);
    return fail(address, "listen on", err);
  }
  return {std::move(fd), {}};
}

void set_no_delay(int fd) { set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1); }

}  // namespace framed::net
