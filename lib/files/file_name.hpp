#pragma once
// A client's file name, checked before anything touches the disk: relative,
// '/'-separated, beneath the root. What escapes the root (an absolute name,
// a ".." component, a '/' where subdirectories are off) is forbidden; what
// is merely malformed (empty, a NUL byte, an empty or "." component, too
// long, the daemon's own temporary prefix) is a bad request. Symlinks are the
// resolver's business (beneath.hpp): a name cannot show them.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/error_code.hpp"

namespace framed::files {

// PATH_MAX and NAME_MAX of Linux: longer names could never be opened.
constexpr std::size_t kMaxNameLength = 4095;
constexpr std::size_t kMaxComponentLength = 255;
// Temporary names of uploads being committed start with this; a client name
// may not, so no request can see or clobber one.
constexpr std::string_view kReservedPrefix = ".framed-";

struct NameError {
  proto::ErrorCode code = proto::ErrorCode::bad_request;
  std::string message;
};

// The name's components, or why it is refused.
struct CheckedName {
  std::vector<std::string> directories;  // empty: the file is directly in the root
  std::string leaf;
};

// `allow_subdirs` false: a name with '/' is forbidden.
std::optional<NameError> check_file_name(std::string_view name, bool allow_subdirs, CheckedName* out = nullptr);

// A list prefix: like a name, but may be empty or end inside a component.
// Only NUL bytes and over-long prefixes are refused; a prefix cannot escape,
// since it only filters names already beneath the root.
std::optional<NameError> check_prefix(std::string_view prefix);

}  // namespace framed::files
