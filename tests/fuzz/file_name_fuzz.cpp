// Client file names: whatever check_file_name accepts stays beneath the
// root by construction (relative, no empty, "." or ".." component, no NUL),
// and its components put back together are the name.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "files/file_name.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool allow_subdirs = (data[0] & 1) != 0;
  const std::string_view name(reinterpret_cast<const char*>(data + 1), size - 1);
  framed::files::CheckedName checked;
  if (framed::files::check_file_name(name, allow_subdirs, &checked)) {
    (void)framed::files::check_prefix(name);
    return 0;
  }
  const auto bad_component = [](const std::string& part) {
    return part.empty() || part == "." || part == ".." || part.find('/') != std::string::npos ||
           part.find('\0') != std::string::npos;
  };
  std::string joined;
  for (const auto& directory : checked.directories) {
    if (bad_component(directory)) std::abort();
    joined.append(directory).push_back('/');
  }
  if (bad_component(checked.leaf)) std::abort();
  if (!allow_subdirs && !checked.directories.empty()) std::abort();
  joined.append(checked.leaf);
  if (joined != name) std::abort();
  return 0;
}
