#include "target.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "failure.hpp"
#include "net/resolve.hpp"

namespace framed::framectl {

Target make_target(Transport transport, std::string_view address) {
  Target target;
  target.transport = transport;
  if (transport == Transport::unix_stream) {
    auto resolved = net::SocketAddress::unix_path(address);
    if (!resolved) {
      std::string message = "not a usable Unix socket path (empty or over 107 bytes): '";
      message.append(address);
      message.append("'");
      fail_usage(message);
    }
    target.address = *resolved;
    target.description = "unix:";
  } else {
    std::string error;
    auto resolved = net::resolve_host_port(address, transport == Transport::udp ? SOCK_DGRAM : SOCK_STREAM, error);
    if (!resolved) fail_usage(error);
    target.address = *resolved;
    target.description = transport == Transport::udp ? "udp:" : "tcp:";
  }
  target.description.append(address);
  return target;
}

Target default_target() {
  if (const char* env = std::getenv("FRAMED_ADDRESS"); env != nullptr && *env != '\0') {
    const std::string_view text(env);
    const auto colon = text.find(':');
    const std::string_view scheme = text.substr(0, colon);
    const std::string_view rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
    if (scheme == "tcp") return make_target(Transport::tcp, rest);
    if (scheme == "unix") return make_target(Transport::unix_stream, rest);
    if (scheme == "udp") return make_target(Transport::udp, rest);
    std::string message = "FRAMED_ADDRESS must be tcp:HOST:PORT, unix:PATH or udp:HOST:PORT, not '";
    message.append(text);
    message.append("'");
    fail_usage(message);
  }
  struct stat info {};
  const std::string path(kDefaultUnixPath);
  if (::stat(path.c_str(), &info) == 0 && S_ISSOCK(info.st_mode)) return make_target(Transport::unix_stream, path);
  return make_target(Transport::tcp, kDefaultTcpAddress);
}

}  // namespace framed::framectl
