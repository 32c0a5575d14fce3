#pragma once
// TCP/UDP listener addresses as written in framed.toml: "HOST:PORT" where
// HOST is a numeric IPv4 address ("127.0.0.1", "0.0.0.0") or a numeric IPv6
// address in brackets ("[::1]", "[::]"), and PORT is a decimal 0..65535
// (0 = the kernel picks a free port; tests rely on it).
//
// Host names are refused on purpose: resolving them at start-up makes the
// bound address depend on DNS and /etc/hosts, and a name can resolve to
// several addresses. IPv6 zone ids ("[fe80::1%eth0]") are refused too
// (inet_pton does not take them).
//
// Pure function over text (inet_pton/inet_ntop only); thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace framed::config {

struct HostPort {
  int family = 0;    // AF_INET or AF_INET6
  std::string host;  // canonical text from inet_ntop, without brackets
  std::uint16_t port = 0;

  // "127.0.0.1:9000" or "[::1]:9000": equal for equal addresses however they
  // were written ("[0:0::1]:09000" gives "[::1]:9000").
  [[nodiscard]] std::string canonical() const;
};

struct AddressParse {
  std::optional<HostPort> value;
  std::string error;  // when value is empty: `invalid address "...": why`
};

AddressParse parse_address(std::string_view text);

}  // namespace framed::config
