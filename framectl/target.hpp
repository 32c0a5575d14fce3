#pragma once
// Where framectl connects, and how it frames what it sends: from --tcp,
// --unix or --udp, else $FRAMED_ADDRESS, else the default (framectl.1,
// ADDRESS).

#include <optional>
#include <string>
#include <string_view>

#include "codec/framing.hpp"
#include "net/socket_address.hpp"

namespace framed::framectl {

enum class Transport { tcp, unix_stream, udp };

// --tls and its options: the server is verified against ca_file (absent:
// the system's store) under host_name, unless insecure.
struct TlsOptions {
  std::string host_name;  // the HOST of --tcp HOST:PORT: SNI and the name checked
  std::optional<std::string> ca_file;
  std::optional<std::string> certificate;  // a client certificate (PEM) and its key
  std::optional<std::string> private_key;
  bool insecure = false;
};

struct Target {
  Transport transport = Transport::tcp;
  net::SocketAddress address;
  std::string description;  // "tcp:127.0.0.1:9000", "unix:/run/framed/framed.sock"
  std::optional<TlsOptions> tls;  // tcp only
};

// The Unix socket tried first when no address is given: where the example
// configuration puts its Unix listener (the built-in defaults have none).
inline constexpr std::string_view kDefaultUnixPath = "/run/framed/framed.sock";
// The built-in defaults' TCP listener (json framing).
inline constexpr std::string_view kDefaultTcpAddress = "127.0.0.1:9000";

// "tcp", "unix" or "udp" and the address text; throws a usage Failure when
// the address is malformed or does not resolve.
Target make_target(Transport transport, std::string_view address);

// $FRAMED_ADDRESS ("tcp:HOST:PORT", "unix:PATH", "udp:HOST:PORT") when set,
// else the default Unix socket when a socket file is there, else TCP
// 127.0.0.1:9000.
Target default_target();

}  // namespace framed::framectl
