#include "config/exposure.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>

#include "config/address.hpp"

namespace framed::config {
namespace {

// 127.0.0.0/8 and ::1 (and an IPv4-mapped loopback): only this machine.
bool is_loopback(const HostPort& address) {
  if (address.family == AF_INET) {
    in_addr in{};
    return ::inet_pton(AF_INET, address.host.c_str(), &in) == 1 && (ntohl(in.s_addr) >> 24) == 127;
  }
  in6_addr in6{};
  if (::inet_pton(AF_INET6, address.host.c_str(), &in6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&in6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&in6) && in6.s6_addr[12] == 127;
}

// Exec through this listener: some command is configured and the listener
// does not shut them all out.
bool reaches_exec(const Config& config, const Listener& listener) {
  if (config.commands.empty()) return false;
  return !listener.allow_commands || !listener.allow_commands->empty();
}

}  // namespace

std::vector<std::string> exposure_warnings(const Config& config) {
  std::vector<std::string> warnings;
  for (const Listener& listener : config.listeners) {
    if (listener.kind != ListenerKind::tcp) continue;
    const AddressParse parsed = parse_address(listener.address);
    if (!parsed.value || is_loopback(*parsed.value)) continue;
    if (listener.auth == ListenerAuth::token && !listener.tls_cert) {
      std::string warning("listener ");
      warning.append(listener.name).append(" on ").append(listener.address);
      warning.append(" takes tokens without TLS: anyone on the path can read them; set tls_cert and tls_key");
      warnings.push_back(std::move(warning));
      continue;
    }
    if (listener.auth != ListenerAuth::none) continue;
    const bool exec = reaches_exec(config, listener);
    const bool files = config.files.has_value();
    if (!exec && !files) continue;
    std::string warning("listener ");
    warning.append(listener.name).append(" on ").append(listener.address);
    warning.append(" is not loopback and lets anyone who reaches it ");
    warning.append(exec && files ? "run exec commands and use files" : exec ? "run exec commands" : "use files");
    warning.append(": set auth = \"token\" (or \"certificate\") with [principals], or allow_commands = []");
    warnings.push_back(std::move(warning));
  }
  return warnings;
}

}  // namespace framed::config
