#include "exec/run_cgroup.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.hpp"
#include "base/errno_text.hpp"
#include "exec/pid_files.hpp"

namespace framed::exec {
namespace {

// Without cgroup.kill (Linux < 5.14) the members are signalled again every
// millisecond, for at most this many rounds, until none is left.
constexpr int kKillRounds = 1000;
// How long a run's end waits for its cgroup to empty before leaving it to
// be removed by a later start (a process in uninterruptible sleep dies late).
constexpr auto kEmptyWait = std::chrono::milliseconds(1000);
constexpr std::string_view kRunPrefix = "run-";

// Set once by enable_run_cgroups(), before any run; `enabled` publishes it.
struct Parent {
  std::string path;
  base::UniqueFd directory;
  std::atomic<bool> enabled{false};
  std::atomic<std::uint64_t> next_run{0};
};

Parent& parent() {
  static Parent instance;
  return instance;
}

// "0::/system.slice/framed.service" in /proc/self/cgroup: the v2 hierarchy.
std::optional<std::string> own_cgroup() {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return std::nullopt;
}

// Where the cgroup2 hierarchy is mounted, and the cgroup at that mount's
// root (/ unless a part of it was bind-mounted), from /proc/self/mountinfo:
// "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS] - cgroup2 SOURCE ...".
std::optional<std::pair<std::string, std::string>> cgroup2_mount() {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    const std::size_t dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    std::vector<std::string> fields;
    std::string_view rest(line.data(), dash);
    while (!rest.empty()) {
      const std::size_t space = rest.find(' ');
      fields.emplace_back(rest.substr(0, space));
      if (space == std::string_view::npos) break;
      rest.remove_prefix(space + 1);
    }
    if (fields.size() >= 5) return std::make_pair(fields[4], fields[3]);
  }
  return std::nullopt;
}

std::vector<pid_t> members(int directory) {
  const auto text = read_small_file(directory, "cgroup.procs");
  return text ? parse_pid_list(*text) : std::vector<pid_t>{};
}

bool write_text(int directory, const char* file, std::string_view text) {
  const base::UniqueFd fd(::openat(directory, file, O_WRONLY | O_CLOEXEC));
  return fd && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

// Run cgroups a killed or crashed daemon left behind: what still runs in
// them belonged to runs nobody supervises any more, so it is killed, and
// the cgroups are removed, so that names do not pile up.
void remove_leftovers(int directory) {
  std::vector<std::string> names = directory_entries(directory, ".");
  std::erase_if(names, [](const std::string& name) { return name.rfind(kRunPrefix, 0) != 0; });
  for (const std::string& name : names) {
    if (::unlinkat(directory, name.c_str(), AT_REMOVEDIR) == 0 || errno != EBUSY) continue;
    const base::UniqueFd leftover(::openat(directory, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!leftover) continue;
    write_text(leftover.get(), "cgroup.kill", "1");
    // Dying takes a moment; a start does not wait long for it.
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (::unlinkat(directory, name.c_str(), AT_REMOVEDIR) == 0 || errno != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace

int enable_run_cgroups(std::string& where, std::string& why) {
  const auto cgroup = own_cgroup();
  const auto mount = cgroup2_mount();
  if (!cgroup || !mount) {
    why = "no cgroup v2 hierarchy is mounted";
    return ENOENT;
  }
  const auto& [mount_point, mount_root] = *mount;
  std::string relative = *cgroup;
  if (mount_root != "/") {
    if (relative.rfind(mount_root, 0) != 0) {
      why = "the daemon's cgroup " + relative + " is not under the mounted part " + mount_root;
      return ENOENT;
    }
    relative.erase(0, mount_root.size());
  }
  where = mount_point + (relative == "/" ? "" : relative);
  if (relative.empty() || relative == "/") {
    why = where + " is the root of the hierarchy, the machine's to divide, not the daemon's";
    return EPERM;
  }
  base::UniqueFd directory(::open(where.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory) {
    why = where + ": " + base::errno_text(errno);
    return errno;
  }
  // Delegated to us? Making (and removing) a child is the test that counts.
  const std::string probe = "probe-" + std::to_string(::getpid());
  if (::mkdirat(directory.get(), probe.c_str(), 0755) != 0 && errno != EEXIST) {
    const int error = errno;
    why = where + ": " + base::errno_text(error);
    return error;
  }
  ::unlinkat(directory.get(), probe.c_str(), AT_REMOVEDIR);
  remove_leftovers(directory.get());

  Parent& state = parent();
  state.path = where;
  state.directory = std::move(directory);
  state.enabled.store(true, std::memory_order_release);
  return 0;
}

bool run_cgroups_enabled() { return parent().enabled.load(std::memory_order_acquire); }

std::optional<RunCgroup> RunCgroup::create(std::string& error) {
  Parent& state = parent();
  const int parent_directory = state.directory.get();
  std::string name;
  for (;;) {
    name = std::string(kRunPrefix) + std::to_string(state.next_run.fetch_add(1, std::memory_order_relaxed));
    if (::mkdirat(parent_directory, name.c_str(), 0755) == 0) break;
    if (errno == EEXIST) continue;  // a leftover still populated: the next name
    error = "cgroup " + state.path + "/" + name + ": " + base::errno_text(errno);
    return std::nullopt;
  }
  std::string path = state.path + "/" + name;
  base::UniqueFd directory(::openat(parent_directory, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  base::UniqueFd procs(directory ? ::openat(directory.get(), "cgroup.procs", O_WRONLY | O_CLOEXEC) : -1);
  base::UniqueFd events(directory ? ::openat(directory.get(), "cgroup.events", O_RDONLY | O_CLOEXEC) : -1);
  if (!procs || !events) {
    error = "cgroup " + path + ": " + base::errno_text(errno);
    ::unlinkat(parent_directory, name.c_str(), AT_REMOVEDIR);
    return std::nullopt;
  }
  return RunCgroup(std::move(path), std::move(directory), std::move(procs), std::move(events));
}

RunCgroup::RunCgroup(std::string path, base::UniqueFd directory, base::UniqueFd procs, base::UniqueFd events)
    : path_(std::move(path)), directory_(std::move(directory)), procs_(std::move(procs)), events_(std::move(events)) {}

RunCgroup::~RunCgroup() {
  if (!directory_) return;  // moved from
  kill_all();
  wait_empty(kEmptyWait);
  // By path: a cgroup is removed with rmdir; left in place if still busy.
  ::rmdir(path_.c_str());
}

void RunCgroup::signal_all(int signal) const {
  for (const pid_t pid : members(directory_.get())) ::kill(pid, signal);
}

void RunCgroup::kill_all() const {
  if (write_text(directory_.get(), "cgroup.kill", "1")) return;
  // No cgroup.kill: signal the members until none is left, which also
  // catches what they fork meanwhile.
  for (int round = 0; round < kKillRounds; ++round) {
    const std::vector<pid_t> pids = members(directory_.get());
    if (pids.empty()) return;
    for (const pid_t pid : pids) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool RunCgroup::wait_empty(std::chrono::milliseconds timeout) const {
  const base::TimePoint deadline = base::Clock::now() + timeout;
  for (;;) {
    std::array<char, 256> text{};
    const ssize_t n = ::pread(events_.get(), text.data(), text.size() - 1, 0);
    if (n > 0 && std::string_view(text.data(), static_cast<std::size_t>(n)).find("populated 0") != std::string_view::npos) {
      return true;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - base::Clock::now()).count();
    if (n <= 0 || left <= 0) return false;
    // A change of cgroup.events wakes poll() with POLLPRI.
    pollfd watch{events_.get(), POLLPRI, 0};
    ::poll(&watch, 1, static_cast<int>(left));
  }
}

}  // namespace framed::exec
