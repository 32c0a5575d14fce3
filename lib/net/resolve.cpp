#include "net/resolve.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

namespace framed::net {

std::optional<SocketAddress> resolve_host_port(std::string_view text, int socktype, std::string& error) {
  if (auto numeric = SocketAddress::parse_inet(text)) return numeric;
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size() || text.front() == '[') {
    error = "expected HOST:PORT, e.g. 127.0.0.1:9000 or [::1]:9000, not '";
    error.append(text);
    error.append("'");
    return std::nullopt;
  }
  const std::string host(text.substr(0, colon));
  const std::string port(text.substr(colon + 1));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    error = "cannot resolve '";
    error.append(text);
    error.append("': ");
    error.append(::gai_strerror(rc));
    return std::nullopt;
  }
  const std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(found, ::freeaddrinfo);
  SocketAddress address;
  std::memcpy(&address.storage, found->ai_addr, found->ai_addrlen);
  address.length = found->ai_addrlen;
  return address;
}

}  // namespace framed::net
