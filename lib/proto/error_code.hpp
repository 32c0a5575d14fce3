#pragma once
// The error codes of PROTOCOL.md section 3, as they appear on the wire.

#include <cstdint>
#include <string_view>

namespace framed::proto {

enum class ErrorCode : std::uint8_t {
  bad_frame,
  frame_too_large,
  bad_request,
  unknown_command,
  forbidden,
  not_found,
  timeout,
  too_busy,
  no_space,
  internal,
};

inline constexpr std::size_t kErrorCodeCount = 10;

constexpr std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::bad_frame: return "bad_frame";
    case ErrorCode::frame_too_large: return "frame_too_large";
    case ErrorCode::bad_request: return "bad_request";
    case ErrorCode::unknown_command: return "unknown_command";
    case ErrorCode::forbidden: return "forbidden";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::timeout: return "timeout";
    case ErrorCode::too_busy: return "too_busy";
    case ErrorCode::no_space: return "no_space";
    case ErrorCode::internal: return "internal";
  }
  return "internal";
}

}  // namespace framed::proto
