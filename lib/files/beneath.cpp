#include "files/beneath.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace framed::files {
namespace {

constexpr std::uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

// Set once a call says the kernel has no openat2: later calls walk at once.
std::atomic<bool> no_openat2{false};

// openat2, or -1 with errno (ENOSYS where the kernel lacks it).
int open_resolved(int root_fd, const std::string& path, int flags) {
  if (no_openat2.load(std::memory_order_relaxed)) {
    errno = ENOSYS;
    return -1;
  }
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags);
  how.resolve = kResolve;
  const long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof how);
  if (fd < 0 && errno == ENOSYS) no_openat2.store(true, std::memory_order_relaxed);
  return static_cast<int>(fd);
}

// Component by component, never following a symlink.
base::UniqueFd walk_directories(int root_fd, const CheckedName& name, bool create, int& error) {
  base::UniqueFd current(::openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!current) {
    error = errno;
    return {};
  }
  for (const std::string& component : name.directories) {
    constexpr int kFlags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = ::openat(current.get(), component.c_str(), kFlags);
    if (fd < 0 && errno == ENOENT && create) {
      // EEXIST: another upload made it meanwhile; open it as usual.
      if (::mkdirat(current.get(), component.c_str(), 0755) != 0 && errno != EEXIST) {
        error = errno;
        return {};
      }
      fd = ::openat(current.get(), component.c_str(), kFlags);
    }
    if (fd < 0) {
      // O_PATH | O_NOFOLLOW opens a symlink itself; O_DIRECTORY then says
      // ENOTDIR. Tell a symlink apart, so that it is refused as one.
      const int failure = errno;
      struct stat st {};
      error = (failure == ENOTDIR && ::fstatat(current.get(), component.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               S_ISLNK(st.st_mode))
                  ? ELOOP
                  : failure;
      return {};
    }
    current.reset(fd);
  }
  return current;
}

}  // namespace

std::string joined(const CheckedName& name) {
  std::string path;
  for (const std::string& component : name.directories) {
    path.append(component);
    path.push_back('/');
  }
  path.append(name.leaf);
  return path;
}

base::UniqueFd open_parent_beneath(int root_fd, const CheckedName& name, bool create, int& error) {
  if (!create && !name.directories.empty()) {
    std::string path = joined(name);
    path.resize(path.size() - name.leaf.size() - 1);
    const int fd = open_resolved(root_fd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) return base::UniqueFd(fd);
    if (errno != ENOSYS) {
      error = errno;
      return {};
    }
  }
  return walk_directories(root_fd, name, create, error);
}

base::UniqueFd open_beneath(int root_fd, const CheckedName& name, int flags, int& error) {
  flags |= O_CLOEXEC | O_NOFOLLOW;
  const int fd = open_resolved(root_fd, joined(name), flags);
  if (fd >= 0) return base::UniqueFd(fd);
  if (errno != ENOSYS) {
    error = errno;
    return {};
  }
  const base::UniqueFd parent = walk_directories(root_fd, name, false, error);
  if (!parent) return {};
  base::UniqueFd file(::openat(parent.get(), name.leaf.c_str(), flags));
  if (!file) error = errno;
  return file;
}

}  // namespace framed::files
