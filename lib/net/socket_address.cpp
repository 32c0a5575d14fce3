#include "net/socket_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace framed::net {

std::optional<SocketAddress> SocketAddress::parse_inet(std::string_view text) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    host.assign(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host.assign(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    // A bare IPv6 address needs brackets, or its port would be ambiguous.
    if (host.find(':') != std::string::npos) return std::nullopt;
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return std::nullopt;
  }
  SocketAddress address;
  if (text.front() == '[') {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
    if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) != 1) return std::nullopt;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    address.length = sizeof(sockaddr_in6);
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) != 1) return std::nullopt;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    address.length = sizeof(sockaddr_in);
  }
  return address;
}

std::optional<SocketAddress> SocketAddress::unix_path(std::string_view path) {
  SocketAddress address;
  auto* un = reinterpret_cast<sockaddr_un*>(&address.storage);
  // sun_path must keep a terminating NUL for filesystem paths.
  if (path.empty() || path.size() >= sizeof un->sun_path) return std::nullopt;
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path.front() == '@') {
    if (path.size() == 1) return std::nullopt;
    un->sun_path[0] = '\0';  // abstract: leading NUL, length counts exactly
    address.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    address.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  }
  return address;
}

std::string SocketAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_INET: {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage);
      ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
      return std::string(host) + ":" + std::to_string(ntohs(v4->sin_port));
    }
    case AF_INET6: {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage);
      ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
      // Appended piece by piece: g++ 12 at -O3 misreads `"[" + std::string`
      // (prepending to a temporary) as an overlapping memcpy (-Wrestrict).
      std::string text = "[";
      text += host;
      text += "]:";
      text += std::to_string(ntohs(v6->sin6_port));
      return text;
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage);
      const auto path_length = length > offsetof(sockaddr_un, sun_path) ? length - offsetof(sockaddr_un, sun_path) : 0;
      if (path_length == 0) return "unix:unnamed";
      if (un->sun_path[0] == '\0') {
        std::string text = "@";  // appended, not prepended: the same -Wrestrict misreading
        text.append(un->sun_path + 1, path_length - 1);
        return text;
      }
      return std::string(un->sun_path, ::strnlen(un->sun_path, path_length));
    }
    default:
      return "unknown";
  }
}

std::optional<SocketAddress> local_address(int fd) {
  SocketAddress address;
  address.length = sizeof address.storage;
  if (::getsockname(fd, address.get(), &address.length) != 0) return std::nullopt;
  return address;
}

}  // namespace framed::net
