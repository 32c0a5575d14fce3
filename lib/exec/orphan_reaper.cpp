#include "exec/orphan_reaper.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/unique_fd.hpp"
#include "exec/pid_files.hpp"

namespace framed::exec {
namespace {

// A sweep waits this long, at most, for the processes it killed to die; a
// process in uninterruptible sleep dies later and is reaped by a later sweep.
constexpr int kSweepRounds = 50;
constexpr auto kSweepPause = std::chrono::milliseconds(1);
// A tree walk stops there: a fork bomb must not make it unbounded.
constexpr std::size_t kMaxTreeSize = 65536;

struct Registry {
  // Shared: a spawn between clone() and register_run(). Exclusive: a sweep
  // deciding which children are orphans.
  std::shared_mutex spawning;
  // One sweep at a time: only a sweep reaps adopted orphans, so a pid it
  // listed stays that orphan's until the same sweep reaps it.
  std::mutex sweeping;
  std::mutex mutex;  // guards the two sets below
  std::unordered_set<pid_t> runs;  // first processes of live runs, unreaped
  std::vector<pid_t> killed;       // adopted orphans killed, not reaped yet
  std::atomic<bool> enabled{false};
  std::atomic<std::uint64_t> killed_total{0};
};

Registry& registry() {
  static Registry instance;
  return instance;
}

// The names in a /proc directory that are pids (processes, or a process's
// threads under task/).
std::vector<pid_t> pids_in(const char* directory) {
  std::vector<pid_t> pids;
  for (const std::string& name : directory_entries(AT_FDCWD, directory)) {
    if (const auto pid = parse_pid(name)) pids.push_back(*pid);
  }
  return pids;
}

// Field 4 of /proc/PID/stat. The command name before it is in parentheses
// and may hold spaces and parentheses itself: the fields start after the
// last ')'.
std::optional<pid_t> parent_of(pid_t pid) {
  const auto stat = read_small_file(AT_FDCWD, "/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return std::nullopt;
  const std::size_t close = stat->rfind(')');
  if (close == std::string::npos || close + 4 >= stat->size()) return std::nullopt;
  std::string_view rest(*stat);
  rest.remove_prefix(close + 4);  // ") S "
  return parse_pid(rest.substr(0, rest.find(' ')));
}

struct ProcessLink {
  pid_t pid;
  pid_t parent;
};

// Every process and its parent: one pass over /proc.
std::vector<ProcessLink> process_table() {
  std::vector<ProcessLink> table;
  for (const pid_t pid : pids_in("/proc")) {
    if (const auto parent = parent_of(pid)) table.push_back({pid, *parent});
  }
  return table;
}

// The children of every thread of this process. /proc/self/task/T/children
// is cheap but needs CONFIG_PROC_CHILDREN; without it, a pass over /proc.
std::vector<pid_t> children_of_this_process() {
  std::vector<pid_t> children;
  const std::vector<pid_t> threads = pids_in("/proc/self/task");
  bool listed = !threads.empty();
  for (const pid_t thread : threads) {
    const auto list = read_small_file(AT_FDCWD, "/proc/self/task/" + std::to_string(thread) + "/children");
    if (!list) {
      // No such file: the kernel lacks it (a thread that just exited would
      // also do this, and the slow path is right then too).
      listed = false;
      break;
    }
    const std::vector<pid_t> listed_here = parse_pid_list(*list);
    children.insert(children.end(), listed_here.begin(), listed_here.end());
  }
  if (listed) return children;
  children.clear();
  const pid_t self = ::getpid();
  for (const ProcessLink& link : process_table()) {
    if (link.parent == self) children.push_back(link.pid);
  }
  return children;
}

// `signal` to `pid` if it is a child of `parent`: through a pidfd opened
// before the parent is checked, so that a pid reused meanwhile fails one of
// the two. True if it was that child (a zombie one included), sent or not.
bool signal_if_child_of(pid_t pid, pid_t parent, int signal) {
  const base::UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd && errno != ENOSYS) return false;  // gone already
  if (parent_of(pid) != parent) return false;
  if (pidfd) {
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), signal, nullptr, 0);
  } else {
    ::kill(pid, signal);  // Linux < 5.3: no pidfds, a narrower race remains
  }
  return true;
}

// Kills the orphans among this process's children. The children are listed
// without the spawn lock (a /proc walk can take milliseconds, and spawns must
// not wait for it); one that looks like an orphan may be a run being started
// right now, so the decision is made again under the lock, held exclusively:
// a spawn that was in progress has registered its child by then, and one
// that starts later made no child in the list.
std::size_t kill_new_orphans(Registry& state) {
  std::vector<pid_t> suspects = children_of_this_process();
  const auto known = [&state](pid_t pid) {
    return state.runs.count(pid) != 0 ||
           std::find(state.killed.begin(), state.killed.end(), pid) != state.killed.end();
  };
  {
    std::lock_guard lock(state.mutex);
    std::erase_if(suspects, known);
  }
  if (suspects.empty()) return 0;
  std::unique_lock exclusive(state.spawning);
  std::lock_guard lock(state.mutex);
  std::size_t found = 0;
  for (const pid_t pid : suspects) {
    if (known(pid)) continue;
    // Still our child? A run's first process reaped by its supervisor since
    // the listing has a pid that may be reused already.
    if (!signal_if_child_of(pid, ::getpid(), SIGKILL)) continue;
    state.killed.push_back(pid);
    ++found;
  }
  return found;
}

// Reaps what has died of the killed orphans; true when none is left.
bool reap_killed(Registry& state) {
  std::lock_guard lock(state.mutex);
  std::erase_if(state.killed, [](pid_t pid) {
    const pid_t reaped = ::waitpid(pid, nullptr, WNOHANG);
    // ECHILD: not ours any more (reaped elsewhere): nothing to wait for.
    return reaped == pid || (reaped < 0 && errno == ECHILD);
  });
  return state.killed.empty();
}


}  // namespace

int contain_orphans() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return errno;
  registry().enabled.store(true, std::memory_order_release);
  return 0;
}

bool containing_orphans() { return registry().enabled.load(std::memory_order_acquire); }

SpawnGuard::SpawnGuard() : lock_(registry().spawning) {}

SpawnGuard::~SpawnGuard() = default;

void SpawnGuard::register_run(pid_t pid) {
  Registry& state = registry();
  std::lock_guard lock(state.mutex);
  state.runs.insert(pid);
}

void forget_run(pid_t pid) {
  Registry& state = registry();
  std::lock_guard lock(state.mutex);
  state.runs.erase(pid);
}

std::size_t reap_orphans() {
  Registry& state = registry();
  if (!state.enabled.load(std::memory_order_acquire)) return 0;
  std::lock_guard one_at_a_time(state.sweeping);
  std::size_t total = 0;
  for (int round = 0; round < kSweepRounds; ++round) {
    const std::size_t found = kill_new_orphans(state);
    total += found;
    // An orphan's own children are re-parented to us when it dies: the
    // sweep goes on until a round finds nobody new and nobody left to reap.
    if (reap_killed(state) && found == 0) break;
    std::this_thread::sleep_for(kSweepPause);
  }
  state.killed_total.fetch_add(total, std::memory_order_relaxed);
  return total;
}

void signal_descendants(pid_t pid, int signal) {
  std::vector<ProcessLink> table = process_table();
  const auto by_parent = [](const ProcessLink& a, const ProcessLink& b) { return a.parent < b.parent; };
  std::sort(table.begin(), table.end(), by_parent);
  std::vector<ProcessLink> tree;  // breadth first, each with its parent
  for (std::size_t next = 0; next <= tree.size() && tree.size() < kMaxTreeSize; ++next) {
    const pid_t parent = next == 0 ? pid : tree[next - 1].pid;
    const auto [first, last] = std::equal_range(table.begin(), table.end(), ProcessLink{0, parent}, by_parent);
    tree.insert(tree.end(), first, last);
  }
  // Only `pid` is known to be unreaped; a pid below it may have died and
  // been reused since the snapshot. The signal goes through a pidfd, opened
  // first and then checked to be a child of the same parent: a reused pid
  // fails one of the two.
  for (const ProcessLink& link : tree) signal_if_child_of(link.pid, link.parent, signal);
}

std::uint64_t orphans_killed() { return registry().killed_total.load(std::memory_order_relaxed); }

}  // namespace framed::exec
