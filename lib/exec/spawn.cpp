#include "exec/spawn.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <initializer_list>

#include "base/errno_text.hpp"
#include "exec/orphan_reaper.hpp"

namespace framed::exec {
namespace {

// The child runs on this much of the spawning thread's stack (the thread is
// suspended meanwhile: CLONE_VFORK). It makes only raw system calls, a few
// hundred bytes deep; 32 KiB leaves room for the libc syscall() wrapper and
// for sanitizer builds, and the worker threads' stacks are 8 MiB.
constexpr std::size_t kChildStackSize = 32 * 1024;

// Kernel ABI for rt_sigaction/rt_sigprocmask: the signal set is _NSIG / 8
// bytes, 8 on x86-64 and arm64 (64 signals, numbered 1 to 64).
constexpr unsigned long kKernelSigsetSize = 8;
constexpr int kKernelSignalCount = 64;

// The kernel's struct sigaction for SIG_DFL is all zeros whatever the
// architecture's field order (handler SIG_DFL is 0, no flags, no restorer,
// empty mask); four words are at least as large as every layout.
struct KernelSigaction {
  unsigned long words[4];
};

// Where close_range() is missing (Linux < 5.9), fds are closed one by one up
// to the soft RLIMIT_NOFILE, but never more than this many calls.
constexpr unsigned kMaxFdsToCloseOneByOne = 1U << 20;

struct LimitSetting {
  int resource = 0;
  rlimit value{};
};

// Prepared by the parent, read by the child. The memory is shared
// (CLONE_VM), so the child reports a failed step through it; the parent reads
// it once clone() has returned, which with CLONE_VFORK is after the child
// has exec'd or exited.
struct ChildSetup {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;  // null: keep the daemon's
  std::array<int, 3> stdio{-1, -1, -1};  // become fds 0, 1, 2; each is >= 3
  std::array<LimitSetting, 4> limits{};
  int limit_count = 0;
  pid_t parent = 0;
  bool change_ids = false;
  bool subreaper = false;  // orphan containment: see orphan_reaper.hpp
  int join_cgroup_fd = -1;  // its cgroup.procs: see run_cgroup.hpp
  uid_t uid = 0;
  gid_t gid = 0;
  unsigned close_limit = 0;  // for the fallback without close_range()
  // Written by the child on failure.
  int error = 0;
  const char* step = nullptr;
};

// The child side. Between clone() and execve() the child shares the daemon's
// memory, including the locks of malloc and of every other thread, so it
// must not call anything but system calls: no allocation, no locks, no
// sanitizer runtime (hence the attributes), no library state.
[[noreturn]] __attribute__((no_sanitize("address", "thread", "undefined")))
void child_fail(ChildSetup& setup, const char* step) {
  setup.error = errno;
  setup.step = step;
  for (;;) ::syscall(SYS_exit_group, 127);
}

__attribute__((no_sanitize("address", "thread", "undefined")))
int child_main(void* argument) {
  ChildSetup& setup = *static_cast<ChildSetup*>(argument);

  // Its own session, so its own process group: the whole group can be
  // killed on timeout, and it has no controlling terminal of ours.
  if (::syscall(SYS_setsid) < 0) child_fail(setup, "setsid");
  // SIGKILL if the spawning thread dies; checked against a parent that died
  // before the request was made.
  if (::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(setup, "prctl");
  if (::syscall(SYS_getppid) != setup.parent) child_fail(setup, "getppid");
  // "0" moves the writer: from here on, everything it starts is born in the
  // run's cgroup. Before the ids change: the daemon's own may write there.
  if (setup.join_cgroup_fd >= 0 && ::syscall(SYS_write, setup.join_cgroup_fd, "0", 1) != 1) {
    child_fail(setup, "join cgroup");
  }
  // While it lives, whatever its tree orphans (setsid, double forks) is
  // re-parented to it rather than past it; kept across execve.
  if (setup.subreaper && ::syscall(SYS_prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
    child_fail(setup, "prctl(child_subreaper)");
  }

  // Default dispositions for every signal. Handlers would be reset by
  // execve anyway, but ignored signals survive it (the daemon ignores
  // SIGPIPE), and until execve a caught signal would run a daemon handler in
  // the child. Errors are for signals that cannot be changed: skipped.
  const KernelSigaction default_action{};
  for (int signal = 1; signal <= kKernelSignalCount; ++signal) {
    if (signal == SIGKILL || signal == SIGSTOP) continue;
    ::syscall(SYS_rt_sigaction, signal, &default_action, nullptr, kKernelSigsetSize);
  }

  for (int target = 0; target < 3; ++target) {
    if (::syscall(SYS_dup3, setup.stdio[static_cast<std::size_t>(target)], target, 0) < 0) {
      child_fail(setup, "dup3");
    }
  }
  // Nothing of the daemon's but 0, 1 and 2: the pipes are close-on-exec
  // already, but an fd another thread opened without O_CLOEXEC is not.
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) < 0) {
    for (unsigned fd = 3; fd < setup.close_limit; ++fd) ::syscall(SYS_close, fd);
  }

  if (setup.cwd != nullptr && ::syscall(SYS_chdir, setup.cwd) < 0) child_fail(setup, "chdir");
  for (int i = 0; i < setup.limit_count; ++i) {
    const LimitSetting& limit = setup.limits[static_cast<std::size_t>(i)];
    if (::syscall(SYS_prlimit64, 0, limit.resource, &limit.value, nullptr) < 0) child_fail(setup, "setrlimit");
  }
  // Groups before the gid before the uid: each needs the privilege the next
  // step gives up. Real, effective and saved ids alike, so the program
  // cannot switch back.
  if (setup.change_ids) {
    if (::syscall(SYS_setgroups, 1, &setup.gid) < 0) child_fail(setup, "setgroups");
    if (::syscall(SYS_setresgid, setup.gid, setup.gid, setup.gid) < 0) child_fail(setup, "setresgid");
    if (::syscall(SYS_setresuid, setup.uid, setup.uid, setup.uid) < 0) child_fail(setup, "setresuid");
  }
  if (::syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(setup, "prctl(no_new_privs)");

  // Last: the spawning thread blocked every signal before clone(), and the
  // program starts with none blocked.
  const std::uint64_t empty_mask = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty_mask, nullptr, kKernelSigsetSize);
  ::syscall(SYS_execve, setup.path, setup.argv, setup.envp);
  child_fail(setup, "execve");
}

// A pipe whose ends are both close-on-exec and above 2: the child dup3()s
// its end onto 0, 1 or 2, and dup3 refuses old == new (a daemon started
// with fd 0 closed would get fd 0 here).
int make_pipe(base::UniqueFd& read_end, base::UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno;
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  for (base::UniqueFd* end : {&read_end, &write_end}) {
    if (end->get() >= 3) continue;
    const int moved = ::fcntl(end->get(), F_DUPFD_CLOEXEC, 3);
    if (moved < 0) return errno;
    end->reset(moved);
  }
  return 0;
}

int set_non_blocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return errno;
  return 0;
}

// The requested limit, never above the daemon's own hard limit: raising a
// hard limit needs privileges, and a tighter limit than asked for is the
// safe side. `headroom` puts the hard limit above the soft one (RLIMIT_CPU:
// SIGXCPU first, SIGKILL a second later).
void add_limit(ChildSetup& setup, int resource, std::optional<std::uint64_t> requested, rlim_t headroom) {
  if (!requested) return;
  rlimit current{};
  ::getrlimit(resource, &current);
  rlim_t soft = static_cast<rlim_t>(*requested);
  rlim_t hard = soft + headroom;
  if (current.rlim_max != RLIM_INFINITY) {
    hard = std::min(hard, current.rlim_max);
    soft = std::min(soft, hard);
  }
  setup.limits[static_cast<std::size_t>(setup.limit_count++)] = LimitSetting{resource, rlimit{soft, hard}};
}

using CloneFunction = int (*)(int (*)(void*), void*, int, void*, ...);

// ThreadSanitizer intercepts clone() and models it as fork(): with CLONE_VM
// its bookkeeping in the child would run on the parent's own state. The
// child here runs nothing instrumented (only raw system calls until execve),
// so a ThreadSanitizer build calls glibc's clone past the interceptor.
CloneFunction clone_function() {
#if defined(__SANITIZE_THREAD__)
  static const CloneFunction function = [] {
    CloneFunction found = &::clone;
    void* libc = ::dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (void* symbol = libc != nullptr ? ::dlsym(libc, "clone") : nullptr) {
      std::memcpy(&found, &symbol, sizeof found);
    }
    return found;
  }();
  return function;
#else
  return &::clone;
#endif
}

pid_t wait_for(pid_t pid) {
  for (;;) {
    const pid_t reaped = ::waitpid(pid, nullptr, 0);
    if (reaped >= 0 || errno != EINTR) return reaped;
  }
}

}  // namespace

SpawnResult spawn_child(const SpawnRequest& request, int join_cgroup_fd) {
  SpawnResult result;
  const auto fail = [&result](int error, std::string_view what) {
    result.child.reset();
    result.error = error;
    result.message.assign(what);
    result.message += ": ";
    result.message += base::errno_text(error);
    return std::move(result);
  };
  if (request.argv.empty() || request.argv.front().empty()) return fail(EINVAL, "spawn: empty argv");

  SpawnedChild child;
  base::UniqueFd stdin_read;
  base::UniqueFd stdout_write;
  base::UniqueFd stderr_write;
  if (const int error = make_pipe(stdin_read, child.stdin_fd)) return fail(error, "pipe");
  if (const int error = make_pipe(child.stdout_fd, stdout_write)) return fail(error, "pipe");
  if (const int error = make_pipe(child.stderr_fd, stderr_write)) return fail(error, "pipe");
  for (const base::UniqueFd* end : {&child.stdin_fd, &child.stdout_fd, &child.stderr_fd}) {
    if (const int error = set_non_blocking(end->get())) return fail(error, "fcntl");
  }

  // Every pointer the child needs, built here: the child may not allocate.
  std::vector<char*> argv;
  argv.reserve(request.argv.size() + 1);
  for (const std::string& item : request.argv) argv.push_back(const_cast<char*>(item.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(request.env.size() + 1);
  for (const std::string& item : request.env) envp.push_back(const_cast<char*>(item.c_str()));
  envp.push_back(nullptr);

  ChildSetup setup;
  setup.path = argv.front();
  setup.argv = argv.data();
  setup.envp = envp.data();
  setup.cwd = request.cwd.empty() ? nullptr : request.cwd.c_str();
  setup.stdio = {stdin_read.get(), stdout_write.get(), stderr_write.get()};
  setup.parent = ::getpid();
  setup.subreaper = containing_orphans();
  setup.join_cgroup_fd = join_cgroup_fd;
  add_limit(setup, RLIMIT_CPU, request.limits.cpu_seconds, 1);
  add_limit(setup, RLIMIT_AS, request.limits.address_space, 0);
  add_limit(setup, RLIMIT_NOFILE, request.limits.open_files, 0);
  add_limit(setup, RLIMIT_NPROC, request.limits.processes, 0);
  if (request.run_as) {
    setup.change_ids = true;
    setup.uid = request.run_as->uid;
    setup.gid = request.run_as->gid;
  }
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  setup.close_limit = static_cast<unsigned>(std::min<rlim_t>(nofile.rlim_cur, kMaxFdsToCloseOneByOne));

  // Every signal blocked across clone(), with the raw system call: glibc's
  // sigprocmask leaves its own two internal signals unblocked, and no
  // handler of the daemon's may run on the child's side before its
  // dispositions are reset. The child inherits this mask and clears it just
  // before execve.
  const std::uint64_t all_signals = ~std::uint64_t{0};
  std::uint64_t saved_mask = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all_signals, &saved_mask, kKernelSigsetSize);

  // From before clone() until the pid is registered: a sweep for orphans
  // running meanwhile would take the new child for one.
  SpawnGuard spawn_guard;
  alignas(16) std::array<std::byte, kChildStackSize> stack;
  int pidfd = -1;
  int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD;
  const CloneFunction clone = clone_function();
  pid_t pid = clone(child_main, stack.data() + stack.size(), flags, &setup, &pidfd);
  if (pid < 0 && errno == EINVAL) {
    // CLONE_PIDFD is Linux 5.2+: without it, pidfd_open() below.
    flags &= ~CLONE_PIDFD;
    pid = clone(child_main, stack.data() + stack.size(), flags, &setup, nullptr);
  }
  const int clone_error = errno;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &saved_mask, nullptr, kKernelSigsetSize);
  if (pid < 0) return fail(clone_error, "clone");
  spawn_guard.register_run(pid);
  base::UniqueFd owned_pidfd(pidfd);

  // The child's ends belong to the child now (it has exec'd or exited).
  stdin_read.reset();
  stdout_write.reset();
  stderr_write.reset();

  if (setup.error != 0) {
    wait_for(pid);  // exited with 127 already: no zombie left behind
    forget_run(pid);
    std::string what = setup.step;
    if (what == "execve") what += " " + request.argv.front();
    if (what == "chdir") what += " " + request.cwd;
    return fail(setup.error, what);
  }

  if ((flags & CLONE_PIDFD) == 0) {
    // Linux 5.3+; without it (ENOSYS) the caller polls for the exit instead.
    owned_pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  }
  child.pid = pid;
  child.pidfd = std::move(owned_pidfd);
  result.child = std::move(child);
  return result;
}

}  // namespace framed::exec
