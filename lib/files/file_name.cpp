#include "files/file_name.hpp"

namespace framed::files {
namespace {

NameError refused(proto::ErrorCode code, std::string message) { return NameError{code, std::move(message)}; }

}  // namespace

std::optional<NameError> check_file_name(std::string_view name, bool allow_subdirs, CheckedName* out) {
  using proto::ErrorCode;
  if (name.empty()) return refused(ErrorCode::bad_request, "the file name is empty");
  if (name.find('\0') != name.npos) return refused(ErrorCode::bad_request, "the file name contains a NUL byte");
  if (name.size() > kMaxNameLength) {
    return refused(ErrorCode::bad_request,
                   "the file name is longer than " + std::to_string(kMaxNameLength) + " bytes");
  }
  if (name.front() == '/') return refused(ErrorCode::forbidden, "absolute file names are not allowed");

  CheckedName checked;
  // Escapes first: a name that both escapes and is malformed is forbidden.
  std::vector<std::string_view> components;
  for (std::size_t start = 0;;) {
    const std::size_t slash = name.find('/', start);
    components.push_back(name.substr(start, slash == name.npos ? name.npos : slash - start));
    if (slash == name.npos) break;
    start = slash + 1;
  }
  for (const std::string_view component : components) {
    if (component == "..") return refused(ErrorCode::forbidden, "file names may not contain '..'");
  }
  if (components.size() > 1 && !allow_subdirs) {
    return refused(ErrorCode::forbidden, "file names may not contain '/' (files.allow_subdirs is off)");
  }
  for (const std::string_view component : components) {
    if (component.empty()) return refused(ErrorCode::bad_request, "the file name has an empty component");
    if (component == ".") return refused(ErrorCode::bad_request, "the file name has a '.' component");
    if (component.size() > kMaxComponentLength) {
      return refused(ErrorCode::bad_request, "a component of the file name is longer than " +
                                                 std::to_string(kMaxComponentLength) + " bytes");
    }
    if (component.starts_with(kReservedPrefix)) {
      return refused(ErrorCode::bad_request,
                     "names starting with '" + std::string(kReservedPrefix) + "' are reserved for the daemon");
    }
  }
  if (out != nullptr) {
    checked.leaf.assign(components.back());
    components.pop_back();
    for (const std::string_view component : components) checked.directories.emplace_back(component);
    *out = std::move(checked);
  }
  return std::nullopt;
}

std::optional<NameError> check_prefix(std::string_view prefix) {
  if (prefix.find('\0') != prefix.npos) {
    return refused(proto::ErrorCode::bad_request, "the prefix contains a NUL byte");
  }
  if (prefix.size() > kMaxNameLength) {
    return refused(proto::ErrorCode::bad_request,
                   "the prefix is longer than " + std::to_string(kMaxNameLength) + " bytes");
  }
  return std::nullopt;
}

}  // namespace framed::files
