#include "sd_notify.hpp"

#include <sys/socket.h>

#include <cstdlib>

#include "base/unique_fd.hpp"
#include "net/socket_address.hpp"

namespace framed {

bool sd_notify(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || *path == '\0') return true;
  const auto address = net::SocketAddress::unix_path(path);
  if (!address) return false;
  base::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  // A datagram to a local socket either goes at once or fails: this never
  // blocks the reactor for longer than a syscall.
  const ssize_t sent = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT, address->get(),
                                address->length);
  return sent == static_cast<ssize_t>(state.size());
}

}  // namespace framed
