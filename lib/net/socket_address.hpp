#pragma once
// A socket address of any family framed listens on: IPv4, IPv6, or Unix (a
// path, or an abstract name written "@name").

#include <sys/socket.h>
#include <sys/un.h>

#include <optional>
#include <string>
#include <string_view>

namespace framed::net {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  [[nodiscard]] int family() const noexcept { return storage.ss_family; }
  [[nodiscard]] const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
  [[nodiscard]] sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }

  // "127.0.0.1:9000", "[::1]:9000": numeric hosts only (no DNS at start-up:
  // a daemon must not hang on a resolver). nullopt when malformed.
  static std::optional<SocketAddress> parse_inet(std::string_view text);
  // A filesystem path, or "@name" for Linux's abstract namespace. nullopt
  // when empty or longer than sun_path allows.
  static std::optional<SocketAddress> unix_path(std::string_view path);

  // "127.0.0.1:9000", "[::1]:9000", "/run/x.sock", "@name", or "unix:unnamed".
  [[nodiscard]] std::string to_string() const;
};

// The address a socket is bound to (to learn the port the kernel chose for 0).
std::optional<SocketAddress> local_address(int fd);

}  // namespace framed::net
