#pragma once
// A cgroup (v2) per run, where the daemon has one delegated to it: the exact
// way to end everything a command started, whatever it did (setsid, double
// forks, clearing its subreaper flag). Under systemd, `Delegate=yes` gives a
// service its own cgroup to manage.
//
// Each run gets DAEMON_CGROUP/run-N, which its first process joins in the
// spawn, before execve (writing "0" to the new cgroup's cgroup.procs): every
// process it starts is born in it and cannot leave it, having no write access
// to any other cgroup. When the run ends, cgroup.kill (Linux 5.14; before
// that, every member is signalled until none is left) kills all of it, and
// the empty cgroup is removed.
//
// No controller is enabled in the daemon's cgroup, so the daemon may stay in
// it beside the runs' cgroups (the no-internal-process rule binds only
// controllers).
//
// Thread-safe: run cgroups are made and removed on the worker threads.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "base/unique_fd.hpp"

namespace framed::exec {

// Turns run cgroups on, under this process's own cgroup; 0 or an errno, and
// what was tried in `why` (e.g. "/sys/fs/cgroup/system.slice/framed.service:
// Permission denied"). Refused (EPERM) at the root of the hierarchy: that is
// the machine's, not the daemon's to fill.
int enable_run_cgroups(std::string& where, std::string& why);
[[nodiscard]] bool run_cgroups_enabled();

class RunCgroup {
 public:
  // A new, empty cgroup for one run; nullopt with `error` set if it cannot
  // be made.
  static std::optional<RunCgroup> create(std::string& error);

  RunCgroup(RunCgroup&& other) noexcept = default;
  RunCgroup& operator=(RunCgroup&&) = delete;
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;
  // Kills what is left in it, waits (briefly) for it to empty, removes it.
  ~RunCgroup();

  // Its cgroup.procs, open for writing: the spawned child writes "0" to it.
  [[nodiscard]] int procs_fd() const { return procs_.get(); }
  // `signal` to every process in it.
  void signal_all(int signal) const;
  // SIGKILL to every process in it, those forking meanwhile included.
  void kill_all() const;
  // True once no process is left in it (zombies do not count), or false
  // when `timeout` passed first.
  bool wait_empty(std::chrono::milliseconds timeout) const;

 private:
  RunCgroup(std::string path, base::UniqueFd directory, base::UniqueFd procs, base::UniqueFd events);

  std::string path_;
  base::UniqueFd directory_;
  base::UniqueFd procs_;
  base::UniqueFd events_;  // cgroup.events: "populated 0|1", pollable
};

}  // namespace framed::exec
