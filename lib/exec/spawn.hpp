#pragma once
// Starting a child process safely from a multithreaded daemon.
//
// The child gets exactly what is described here and nothing of the daemon:
//  * argv[0] is executed as given (an absolute path: no PATH search, no
//    shell), with `env` as its whole environment;
//  * its own session and process group (pgid = sid = pid), so that the whole
//    group can be signalled without touching the daemon;
//  * optionally its own cgroup, joined before anything else can happen in
//    it;
//  * every signal at its default disposition and an empty signal mask: a
//    SIGPIPE the daemon ignores must not reach `yes | head`;
//  * fds 0, 1 and 2 are its pipes, and no other fd is open;
//  * optional cwd and resource limits, applied before execve, so there is no
//    moment when the program runs without them;
//  * SIGKILL if the thread that spawned it dies (PR_SET_PDEATHSIG), so a
//    daemon that is killed does not leave its commands running unsupervised;
//  * no_new_privs (PR_SET_NO_NEW_PRIVS): no setuid program, no file
//    capability gives it more than the daemon had;
//  * optionally another user and group (a daemon running as root): groups,
//    gid, then uid, all three ids of each, so nothing can switch back, and
//    the kernel clears every capability when the uid leaves 0.
//
// How: clone(CLONE_VM | CLONE_VFORK), which is what glibc's posix_spawn does
// inside. posix_spawn alone cannot set rlimits in the child, and prlimit()
// after posix_spawn returns would leave the program running unlimited for a
// moment (it has already exec'd by then). fork() is out: it copies the page
// tables of a large multithreaded process and is not async-signal-safe after
// threads exist. The child runs only raw system calls on a private stack
// while the spawning thread is suspended, then execs.
//
// Thread-safe: any thread may spawn; each call uses only its own data.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"

namespace framed::exec {

struct ResourceLimits {
  std::optional<std::uint64_t> cpu_seconds;    // RLIMIT_CPU: SIGXCPU at the limit, SIGKILL a second later
  std::optional<std::uint64_t> address_space;  // RLIMIT_AS, bytes
  std::optional<std::uint64_t> open_files;     // RLIMIT_NOFILE
  std::optional<std::uint64_t> processes;      // RLIMIT_NPROC: of the child's (real) user, all its processes
};

// Who the child runs as; absent: the daemon's own ids.
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;  // also its only supplementary group
};

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0]: absolute path of the program; never empty
  std::vector<std::string> env;   // "NAME=value" items: the child's whole environment
  std::string cwd;                // empty: the daemon's working directory
  ResourceLimits limits;          // each clamped to the daemon's own hard limit
  std::optional<Credentials> run_as;
};

// A running (or exited, not yet reaped) child. The caller must reap `pid`
// with waitpid() exactly once; until then the pid and the process group id
// cannot be reused, so signalling the group is safe.
struct SpawnedChild {
  pid_t pid = -1;            // also its process group and session id
  base::UniqueFd pidfd;      // readable once it exits; invalid if the kernel has no pidfds
  base::UniqueFd stdin_fd;   // write end of its stdin, non-blocking, close-on-exec
  base::UniqueFd stdout_fd;  // read end of its stdout, non-blocking, close-on-exec
  base::UniqueFd stderr_fd;  // read end of its stderr, non-blocking, close-on-exec
};

struct SpawnResult {
  std::optional<SpawnedChild> child;
  int error = 0;        // errno of what failed, when !child
  std::string message;  // e.g. "execve /usr/bin/x: No such file or directory"
};

// Never throws for system errors (they come back as values); a child that
// was created but could not exec has already been reaped when this returns.
// `join_cgroup_fd`: a cgroup's cgroup.procs, open for writing
// (run_cgroup.hpp), which the child joins first thing, so all it starts is
// born there; -1 for none.
SpawnResult spawn_child(const SpawnRequest& request, int join_cgroup_fd = -1);

}  // namespace framed::exec
