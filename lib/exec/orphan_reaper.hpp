#pragma once
// What a command starts ends with its run, without cgroups: the escapes
// through setsid() and double forks that a process-group kill misses.
//
// How. Once contain_orphans() has been called, two things hold:
//  * this process is a child subreaper (PR_SET_CHILD_SUBREAPER): an orphan
//    among its descendants is re-parented to it, not to init;
//  * every run's first process is made a child subreaper too, in the spawn
//    before execve (the setting survives exec), so while a run's first
//    process lives, every orphan of its tree is re-parented to it.
// So a process this one adopts was left behind by a run whose first process
// has exited: that run is over, whatever session or process group the
// process moved to. reap_orphans() kills (SIGKILL) and reaps every child of
// this process that is not the first process of a live run; the command
// runner calls it when a run's first process has exited, at which point its
// orphans have been re-parented already (the kernel does that at exit, before
// the parent hears of it).
//
// While the run is alive, its escaped processes are still in its first
// process's tree: signal_descendants() reaches them on a timeout.
//
// Not covered: a program that clears its own subreaper flag (prctl) lets its
// orphans reach the daemon early, where they are killed early; a cgroup per
// run is the exact alternative where the daemon has a delegated one.
//
// Thread-safe; process-wide, like the subreaper setting itself.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <shared_mutex>

namespace framed::exec {

// Makes this process a child subreaper and turns the containment on for
// every later spawn. 0, or the errno of prctl (then nothing changes).
int contain_orphans();
[[nodiscard]] bool containing_orphans();

// Held by spawn_child from before clone() until the new first process is
// registered, so that a sweep never mistakes a run being started for an
// orphan. Shared: spawns do not wait for each other.
class SpawnGuard {
 public:
  SpawnGuard();
  ~SpawnGuard();
  SpawnGuard(const SpawnGuard&) = delete;
  SpawnGuard& operator=(const SpawnGuard&) = delete;

  // The first process of a run: never killed by a sweep until forgotten.
  void register_run(pid_t pid);

 private:
  std::shared_lock<std::shared_mutex> lock_;
};

// Its first process has been reaped: the pid may be reused from now on.
void forget_run(pid_t pid);

// Kills and reaps every adopted orphan (see above); waits a few milliseconds
// at most for the killed ones to die, and leaves any slower one for the next
// sweep. Returns how many it killed. Does nothing unless contain_orphans()
// was called.
std::size_t reap_orphans();

// `signal` to every process in `pid`'s tree below it (not to `pid` itself).
void signal_descendants(pid_t pid, int signal);

// Orphans killed since the start, for stats.
[[nodiscard]] std::uint64_t orphans_killed();

}  // namespace framed::exec
