#include "exec/child_process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <optional>
#include <string_view>

#include "base/clock.hpp"
#include "base/errno_text.hpp"
#include "exec/orphan_reaper.hpp"
#include "exec/run_cgroup.hpp"

namespace framed::exec {
namespace {

using base::Clock;
using base::TimePoint;

// One read's worth: a pipe's default capacity, so a full pipe empties in one
// call.
constexpr std::size_t kReadChunk = 64 * 1024;
// Without a pidfd (Linux < 5.3) the exit is noticed by asking this often.
constexpr auto kExitPollInterval = std::chrono::milliseconds(10);
// An output sink that is not ready is asked again this often.
constexpr auto kSinkRetryInterval = std::chrono::milliseconds(2);
// Exited, with its pipes still held open: the orphan sweep is made again
// this often, for what died too slowly to be reaped by the last one (its
// own children are re-parented to the daemon only then).
constexpr auto kOrphanSweepInterval = std::chrono::milliseconds(20);

enum class StopReason : std::uint8_t { none, timeout, output_limit, cancelled };

// A write to a pipe whose reader has gone raises SIGPIPE in the writing
// thread. The daemon ignores SIGPIPE, but run_child may run in a process
// that does not (tests, tools): block it around the write and swallow the
// one the write raised, so EPIPE comes back as a plain error.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_, &saved_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlocked() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

  void consume_raised() {
    if (was_pending_) return;
    const timespec no_wait{};
    while (::sigtimedwait(&pipe_, nullptr, &no_wait) < 0 && errno == EINTR) {
    }
  }

 private:
  sigset_t pipe_{};
  sigset_t saved_{};
  bool was_pending_ = false;
};

class Supervisor {
 public:
  Supervisor(SpawnedChild& child, const RunRequest& request, const RunCgroup* cgroup, int cancel_fd,
             TimePoint start)
      : child_(child),
        cgroup_(cgroup),
        request_(request),
        cancel_fd_(cancel_fd),
        pending_stdin_(request.stdin_data),
        deadline_(start + request.timeout) {}

  // Only reached with the child unreaped when something threw (allocation
  // failure while appending output): it still must not become a zombie.
  ~Supervisor() {
    if (!exited_) {
      ::kill(-child_.pid, SIGKILL);
      reap();
      reap_orphans();
    }
  }

  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  void run(RunResult& result);

 private:
  // Which fd each pollfd slot watches.
  enum class Slot : std::uint8_t { stdin_pipe, stdout_pipe, stderr_pipe, exit, cancel };

  void begin_stop(StopReason reason, TimePoint now);
  void signal_group(int signal) const;
  void on_exit(TimePoint now);
  void reap();
  void feed_stdin();
  void drain(base::UniqueFd& fd, CapturedOutput& output, OutputStream stream, TimePoint now);
  void keep(CapturedOutput& output, OutputStream stream, std::size_t size);
  [[nodiscard]] bool exit_pending() const;
  [[nodiscard]] int poll_timeout_ms(TimePoint now) const;

  SpawnedChild& child_;
  const RunCgroup* cgroup_;  // null: the run has no cgroup of its own
  const RunRequest& request_;
  int cancel_fd_;
  std::string_view pending_stdin_;
  TimePoint deadline_;
  StopReason stop_ = StopReason::none;
  std::optional<TimePoint> kill_at_;  // SIGKILL time, once SIGTERM has gone out
  bool killed_ = false;
  bool exited_ = false;  // the command's process has exited and been reaped
  int status_ = 0;
  std::optional<TimePoint> drain_until_;  // after the exit: how long to wait for pipe EOF
  std::optional<TimePoint> next_sweep_;   // after the exit, with orphan containment
  bool sink_paused_ = false;              // the output sink is not ready: pipes unread
  std::string error_;
  CapturedOutput out_;
  CapturedOutput err_;
  std::array<char, kReadChunk> buffer_{};
};

void Supervisor::run(RunResult& result) {
  if (pending_stdin_.empty()) child_.stdin_fd.reset();  // EOF at once

  std::array<pollfd, 5> fds{};
  std::array<Slot, 5> slots{};
  while (!exited_ || child_.stdout_fd || child_.stderr_fd) {
    TimePoint now = Clock::now();
    if (stop_ == StopReason::none && now >= deadline_) begin_stop(StopReason::timeout, now);
    if (kill_at_ && !killed_ && !exited_ && now >= *kill_at_) {
      signal_group(SIGKILL);
      killed_ = true;
    }
    // Exited, but something outside its process group (it called setsid)
    // still holds the pipes: stop waiting for their end.
    if (exited_ && drain_until_ && now >= *drain_until_) break;
    if (exited_ && next_sweep_ && now >= *next_sweep_) {
      reap_orphans();
      next_sweep_ = now + kOrphanSweepInterval;
    }

    std::size_t count = 0;
    const auto watch = [&](int fd, short events, Slot slot) {
      fds[count] = pollfd{fd, events, 0};
      slots[count++] = slot;
    };
    if (child_.stdin_fd) watch(child_.stdin_fd.get(), POLLOUT, Slot::stdin_pipe);
    sink_paused_ = request_.output_sink != nullptr && !request_.output_sink->ready();
    if (child_.stdout_fd && !sink_paused_) watch(child_.stdout_fd.get(), POLLIN, Slot::stdout_pipe);
    if (child_.stderr_fd && !sink_paused_) watch(child_.stderr_fd.get(), POLLIN, Slot::stderr_pipe);
    if (!exited_ && child_.pidfd) watch(child_.pidfd.get(), POLLIN, Slot::exit);
    if (stop_ != StopReason::cancelled && cancel_fd_ >= 0) watch(cancel_fd_, POLLIN, Slot::cancel);

    if (::poll(fds.data(), count, poll_timeout_ms(now)) < 0) {
      if (errno == EINTR) continue;
      error_ = "poll: " + base::errno_text(errno);
      break;  // the destructor kills and reaps
    }
    now = Clock::now();
    for (std::size_t i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      switch (slots[i]) {
        case Slot::stdin_pipe: feed_stdin(); break;
        case Slot::stdout_pipe: drain(child_.stdout_fd, out_, OutputStream::stdout_stream, now); break;
        case Slot::stderr_pipe: drain(child_.stderr_fd, err_, OutputStream::stderr_stream, now); break;
        case Slot::exit: on_exit(now); break;
        case Slot::cancel:
          stop_ = StopReason::cancelled;
          if (!exited_ && !killed_) {
            signal_group(SIGKILL);
            killed_ = true;
          }
          break;
      }
    }
    if (!exited_ && !child_.pidfd && exit_pending()) on_exit(now);
  }

  result.out = std::move(out_);
  result.err = std::move(err_);
  if (!error_.empty() || !exited_) {
    result.outcome = RunOutcome::failed;
    result.error = error_.empty() ? std::string("lost track of the child") : error_;
    return;
  }
  if (WIFEXITED(status_)) {
    result.exit_code = WEXITSTATUS(status_);
  } else if (WIFSIGNALED(status_)) {
    result.signal = WTERMSIG(status_);
    result.exit_code = 128 + result.signal;
  }
  switch (stop_) {
    case StopReason::cancelled: result.outcome = RunOutcome::cancelled; break;
    case StopReason::timeout: result.outcome = RunOutcome::timed_out; break;
    case StopReason::none:
    case StopReason::output_limit: result.outcome = RunOutcome::finished; break;
  }
}

void Supervisor::begin_stop(StopReason reason, TimePoint now) {
  if (stop_ != StopReason::none) return;
  stop_ = reason;
  if (exited_) return;  // reaped: its group id may not be ours to signal any more
  signal_group(SIGTERM);
  // A stopped process acts on SIGTERM only once continued.
  signal_group(SIGCONT);
  kill_at_ = now + request_.kill_grace;
}

void Supervisor::signal_group(int signal) const {
  // Only before the reap: until then the pid, and so the group id, cannot
  // have been given to anyone else.
  if (exited_) return;
  ::kill(-child_.pid, signal);
  // What left the group (setsid) is still in the run's cgroup, or in the
  // first process's tree while it lives when orphan containment makes it a
  // subreaper.
  if (cgroup_ != nullptr) {
    signal == SIGKILL ? cgroup_->kill_all() : cgroup_->signal_all(signal);
  } else if (containing_orphans()) {
    signal_descendants(child_.pid, signal);
  }
}

void Supervisor::on_exit(TimePoint now) {
  // Whatever the command left running in its process group goes with it;
  // what left the group has been re-parented to the daemon by now and goes
  // with the orphan sweep, which also ends the wait for pipes it held open.
  ::kill(-child_.pid, SIGKILL);
  if (cgroup_ != nullptr) cgroup_->kill_all();
  reap();
  reap_orphans();
  child_.stdin_fd.reset();  // nobody is left to read it
  child_.pidfd.reset();
  drain_until_ = stop_ == StopReason::none ? deadline_ : now + request_.kill_grace;
  if (containing_orphans()) next_sweep_ = now + kOrphanSweepInterval;
}

void Supervisor::reap() {
  for (;;) {
    if (::waitpid(child_.pid, &status_, 0) == child_.pid) break;
    if (errno == EINTR) continue;
    // ECHILD: someone else reaped it (SIGCHLD set to SIG_IGN in this
    // process?). The exit status is lost.
    error_ = "waitpid: " + base::errno_text(errno);
    break;
  }
  forget_run(child_.pid);
  exited_ = true;
}

bool Supervisor::exit_pending() const {
  // WNOWAIT: notice the exit but leave the child unreaped, so the group can
  // still be signalled safely in on_exit().
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(child_.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == child_.pid;
}

void Supervisor::feed_stdin() {
  SigpipeBlocked sigpipe;
  while (!pending_stdin_.empty()) {
    const ssize_t n = ::write(child_.stdin_fd.get(), pending_stdin_.data(), pending_stdin_.size());
    if (n > 0) {
      pending_stdin_.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;  // the pipe is full: wait for POLLOUT
    // EPIPE: the command closed its stdin, so it does not want the rest.
    if (n < 0 && errno == EPIPE) sigpipe.consume_raised();
    break;
  }
  child_.stdin_fd.reset();  // all written (or unwanted): EOF
}

void Supervisor::keep(CapturedOutput& output, OutputStream stream, std::size_t size) {
  if (size == 0) return;
  output.size += size;
  if (request_.output_sink != nullptr) {
    request_.output_sink->write(stream, std::string_view(buffer_.data(), size));
  } else {
    output.bytes.append(buffer_.data(), size);
  }
}

void Supervisor::drain(base::UniqueFd& fd, CapturedOutput& output, OutputStream stream, TimePoint now) {
  const ssize_t n = ::read(fd.get(), buffer_.data(), buffer_.size());
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {  // EOF: every process holding the write end has closed it
    fd.reset();
    return;
  }
  const std::uint64_t room = request_.max_output - std::min<std::uint64_t>(output.size, request_.max_output);
  const auto size = static_cast<std::uint64_t>(n);
  if (size <= room) {
    keep(output, stream, static_cast<std::size_t>(size));
    return;
  }
  // Over the cap: keep what fits, stop reading (a further write by the
  // command gets EPIPE or SIGPIPE), and stop the command.
  keep(output, stream, static_cast<std::size_t>(room));
  output.truncated = true;
  fd.reset();
  begin_stop(StopReason::output_limit, now);
}

int Supervisor::poll_timeout_ms(TimePoint now) const {
  std::optional<TimePoint> wake;
  const auto consider = [&wake](TimePoint when) { wake = wake ? std::min(*wake, when) : when; };
  if (stop_ == StopReason::none) consider(deadline_);
  if (kill_at_ && !killed_ && !exited_) consider(*kill_at_);
  if (drain_until_) consider(*drain_until_);
  if (next_sweep_ && (child_.stdout_fd || child_.stderr_fd)) consider(*next_sweep_);
  if (!exited_ && !child_.pidfd) consider(now + kExitPollInterval);
  if (sink_paused_ && (child_.stdout_fd || child_.stderr_fd)) consider(now + kSinkRetryInterval);
  if (!wake) return -1;
  if (*wake <= now) return 0;
  // Rounded up: waking a little early would only spin until the deadline.
  const auto wait = std::chrono::ceil<std::chrono::milliseconds>(*wake - now).count();
  return static_cast<int>(std::min<std::int64_t>(wait, INT_MAX));
}

}  // namespace

RunResult run_child(const RunRequest& request, int cancel_fd) {
  RunResult result;
  const TimePoint start = Clock::now();
  // Made before the spawn and removed after the reap, once empty.
  const bool own_cgroup = run_cgroups_enabled();
  const std::optional<RunCgroup> cgroup = own_cgroup ? RunCgroup::create(result.error) : std::nullopt;
  if (own_cgroup && !cgroup) {
    result.outcome = RunOutcome::failed;  // no run without its containment
    result.elapsed = Clock::now() - start;
    return result;
  }
  SpawnResult spawned = spawn_child(request.spawn, cgroup ? cgroup->procs_fd() : -1);
  if (!spawned.child) {
    result.outcome = RunOutcome::failed;
    result.error = std::move(spawned.message);
  } else {
    Supervisor supervisor(*spawned.child, request, cgroup ? &*cgroup : nullptr, cancel_fd, start);
    supervisor.run(result);
  }
  result.elapsed = Clock::now() - start;
  return result;
}

}  // namespace framed::exec
