#include "config/redis_url.hpp"

#include <sys/socket.h>

#include "config/address.hpp"

namespace framed::config {
namespace {

constexpr std::string_view kRedisScheme = "redis://";
constexpr std::string_view kRedisExample = "e.g. \"redis://127.0.0.1:6379\"";

RedisUrlParse refuse_url(std::string_view text, std::string_view why) {
  RedisUrlParse result;
  result.error = "invalid Redis URL \"";
  result.error.append(text);
  result.error += "\": ";
  result.error.append(why);
  return result;
}

}  // namespace

std::string RedisEndpoint::url() const {
  std::string out(kRedisScheme);
  if (host.find(':') != std::string::npos) {
    out += "[" + host + "]";
  } else {
    out += host;
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

RedisUrlParse parse_redis_url(std::string_view text) {
  if (!text.starts_with(kRedisScheme)) {
    return refuse_url(text, std::string("the scheme must be redis://, ") + std::string(kRedisExample));
  }
  std::string_view rest = text.substr(kRedisScheme.size());
  if (rest.find('@') != std::string_view::npos) {
    return refuse_url(text, "a user or password is not supported (bind Redis to a trusted address instead)");
  }
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    return refuse_url(text, "nothing may follow the port (no /DB, path or query: the bridge only publishes)");
  }
  // `localhost` is the one name taken, as the loopback address: no lookup.
  std::string rewritten;
  if (rest.starts_with("localhost:")) {
    rewritten = "127.0.0.1" + std::string(rest.substr(std::string_view("localhost").size()));
    rest = rewritten;
  }
  AddressParse address = parse_address(rest);
  if (!address.value) {
    // parse_address names its own input; say why about the URL instead.
    const std::size_t why = address.error.find("\": ");
    std::string reason = why == std::string::npos ? address.error : address.error.substr(why + 3);
    if (reason.find("host names are not resolved") != std::string::npos) {
      reason = "the host must be a numeric IPv4 address, an IPv6 address in brackets or localhost "
               "(a name would need a DNS lookup, which could block the daemon's loop)";
    }
    return refuse_url(text, reason);
  }
  if (address.value->port == 0) return refuse_url(text, "the port must be a number from 1 to 65535");
  RedisUrlParse result;
  result.value = RedisEndpoint{std::move(address.value->host), address.value->port};
  return result;
}

}  // namespace framed::config
