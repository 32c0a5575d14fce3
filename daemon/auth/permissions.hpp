#pragma once
// What a principal may do, asked where the request names it: an exec name,
// a pub/sub channel. (Files are checked by the dispatcher, from the
// command's Permission.)

#include <string_view>

#include "config/config.hpp"

namespace framed::auth {

// allow_commands absent: the listener decides alone.
[[nodiscard]] bool may_exec(const config::Principal& principal, std::string_view command) noexcept;
// One of the principal's channel globs matches the whole name (fnmatch(3),
// no flags: '*' spans dots, so "builds.*" matches "builds.arm64.done").
[[nodiscard]] bool may_use_channel(const config::Principal& principal, std::string_view channel);

}  // namespace framed::auth
