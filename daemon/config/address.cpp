#include "config/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <string>
#include <utility>

namespace framed::config {
namespace {

AddressParse fail(std::string_view text, std::string_view why) {
  AddressParse result;
  result.error = "invalid address \"";
  result.error.append(text);
  result.error += "\": ";
  result.error.append(why);
  return result;
}

}  // namespace

std::string HostPort::canonical() const {
  std::string out;
  if (family == AF_INET6) {
    out = "[" + host + "]";
  } else {
    out = host;
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

AddressParse parse_address(std::string_view text) {
  constexpr std::string_view kExample = "e.g. \"127.0.0.1:9000\" or \"[::1]:9000\"";
  if (text.find('\0') != std::string_view::npos) return fail(text, "contains a NUL byte");
  std::string_view host;
  std::string_view port_text;
  bool bracketed = false;

  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return fail(text, "missing ']' after the IPv6 address");
    }
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return fail(text, std::string("missing \":PORT\" after ']', ") + std::string(kExample));
    }
    port_text = rest.substr(1);
    bracketed = true;
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail(text, std::string("missing \":PORT\", ") + std::string(kExample));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail(text, "write an IPv6 address in brackets, e.g. \"[::1]:9000\"");
    }
  }

  if (host.empty()) {
    return fail(text, "missing host; use \"0.0.0.0\" or \"[::]\" for every interface");
  }

  // Digits only: from_chars alone would take "9000abc" up to the 'a' and
  // std::stoul would take "+9000" and " 9000".
  unsigned port = 0;
  const char* const port_end = port_text.data() + port_text.size();
  const auto [end, ec] = std::from_chars(port_text.data(), port_end, port);
  if (port_text.empty() || port_text.front() == '+' || port_text.front() == '-' ||
      ec != std::errc() || end != port_end || port > 65535) {
    return fail(text, "the port must be a number from 0 to 65535");
  }

  const std::string host_z(host);  // inet_pton wants a NUL-terminated string
  HostPort result;
  result.port = static_cast<std::uint16_t>(port);
  char canonical[INET6_ADDRSTRLEN] = {};
  if (bracketed) {
    in6_addr addr6{};
    if (inet_pton(AF_INET6, host_z.c_str(), &addr6) != 1) {
      return fail(text, "not a numeric IPv6 address inside the brackets");
    }
    result.family = AF_INET6;
    inet_ntop(AF_INET6, &addr6, canonical, sizeof canonical);
  } else {
    in_addr addr4{};
    if (inet_pton(AF_INET, host_z.c_str(), &addr4) != 1) {
      return fail(text,
                  "the host must be a numeric IPv4 address (\"127.0.0.1\") or an IPv6 "
                  "address in brackets (\"[::1]\"); host names are not resolved");
    }
    result.family = AF_INET;
    inet_ntop(AF_INET, &addr4, canonical, sizeof canonical);
  }
  result.host = canonical;
  AddressParse parsed;
  parsed.value = std::move(result);
  return parsed;
}

}  // namespace framed::config
