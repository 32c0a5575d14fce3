#include "exec/pid_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <memory>

#include "base/unique_fd.hpp"

namespace framed::exec {

std::optional<pid_t> parse_pid(std::string_view text) {
  pid_t pid = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (error != std::errc() || end != text.data() + text.size() || pid <= 0) return std::nullopt;
  return pid;
}

std::vector<pid_t> parse_pid_list(std::string_view text) {
  std::vector<pid_t> pids;
  while (!text.empty()) {
    const std::size_t separator = text.find_first_of(" \n");
    if (const auto pid = parse_pid(text.substr(0, separator))) pids.push_back(*pid);
    if (separator == std::string_view::npos) break;
    text.remove_prefix(separator + 1);
  }
  return pids;
}

std::optional<std::string> read_small_file(int directory, const std::string& path) {
  const base::UniqueFd fd(::openat(directory, path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string text;
  std::array<char, 4096> chunk{};
  for (;;) {
    const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) return text;
    text.append(chunk.data(), static_cast<std::size_t>(n));
  }
}

std::vector<std::string> directory_entries(int directory, const std::string& path) {
  std::vector<std::string> names;
  const int fd = ::openat(directory, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return names;
  // The DIR owns the fd from here on, closed with it, whatever throws.
  const std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), &::closedir);
  if (!dir) {
    ::close(fd);
    return names;
  }
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string_view name(entry->d_name);
    if (name != "." && name != "..") names.emplace_back(name);
  }
  return names;
}

}  // namespace framed::exec
