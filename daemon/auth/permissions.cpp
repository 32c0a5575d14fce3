#include "auth/permissions.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <string>

namespace framed::auth {

bool may_exec(const config::Principal& principal, std::string_view command) noexcept {
  if (!principal.allow_commands) return true;
  const auto& allowed = *principal.allow_commands;
  return std::find(allowed.begin(), allowed.end(), command) != allowed.end();
}

bool may_use_channel(const config::Principal& principal, std::string_view channel) {
  if (principal.channels.empty()) return false;
  // fnmatch takes C strings; a channel name is bounded (pubsub.cpp) and a
  // NUL in it could never match a glob from the config.
  if (channel.find('\0') != std::string_view::npos) return false;
  const std::string name(channel);
  return std::any_of(principal.channels.begin(), principal.channels.end(),
                     [&name](const std::string& glob) { return ::fnmatch(glob.c_str(), name.c_str(), 0) == 0; });
}

}  // namespace framed::auth
