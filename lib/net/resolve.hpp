#pragma once
// "HOST:PORT" to a socket address, for clients: a numeric address as
// SocketAddress::parse_inet reads it ("127.0.0.1:9000", "[::1]:9000"), else
// a host name looked up with getaddrinfo (the first address is used). The
// daemon never calls this: it binds numeric addresses only, so that start-up
// cannot hang on a resolver.

#include <optional>
#include <string>
#include <string_view>

#include "net/socket_address.hpp"

namespace framed::net {

// `socktype` is SOCK_STREAM or SOCK_DGRAM. nullopt with `error` set when the
// text is malformed or the name does not resolve.
std::optional<SocketAddress> resolve_host_port(std::string_view text, int socktype, std::string& error);

}  // namespace framed::net
