#include "reactor/epoll_backend.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace framed::reactor {
namespace {

// How many connections one readiness edge may accept before other fds get a
// turn; the rest wait for the next poll(), which then does not block.
constexpr int kAcceptBurst = 64;

}  // namespace

std::unique_ptr<EpollBackend> EpollBackend::create(int* error) {
  base::UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd) {
    *error = -errno;
    return nullptr;
  }
  return std::unique_ptr<EpollBackend>(new EpollBackend(std::move(fd)));  // private ctor
}

EpollBackend::FdState& EpollBackend::state_for(int fd) {
  if (static_cast<std::size_t>(fd) >= fds_.size()) fds_.resize(static_cast<std::size_t>(fd) + 64);
  FdState& state = fds_[static_cast<std::size_t>(fd)];
  if (!state.registered) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    event.data.fd = fd;
    // EEXIST cannot happen (we track registration); any other failure shows
    // up as the operation never becoming ready, so try it optimistically.
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event);
    state.registered = true;
    state.readable = true;  // optimistic: the first try costs one EAGAIN at most
    state.writable = true;
  }
  return state;
}

void EpollBackend::submit_input(int fd, InputOp op) {
  FdState& state = state_for(fd);
  state.input = op;
  if (state.readable) try_input(fd, state);
}

void EpollBackend::accept(int fd, std::uint64_t user_data) {
  submit_input(fd, InputOp{OpKind::accept, user_data, nullptr, 0});
}

void EpollBackend::recv(int fd, void* buffer, std::size_t length, std::uint64_t user_data) {
  submit_input(fd, InputOp{OpKind::recv, user_data, buffer, length});
}

void EpollBackend::recvmsg(int fd, msghdr* message, std::uint64_t user_data) {
  submit_input(fd, InputOp{OpKind::recvmsg, user_data, message, 0});
}

void EpollBackend::read(int fd, void* buffer, std::size_t length, std::uint64_t user_data) {
  submit_input(fd, InputOp{OpKind::read, user_data, buffer, length});
}

void EpollBackend::sendmsg(int fd, const msghdr* message, std::uint64_t user_data) {
  FdState& state = state_for(fd);
  state.output = OutputOp{true, user_data, message};
  if (state.writable) try_output(fd, state);
}

void EpollBackend::wait_readable(int fd, std::uint64_t user_data) {
  FdState& state = state_for(fd);
  state.read_waiter = Waiter{true, user_data};
  try_wait(fd, state.read_waiter, POLLIN);
}

void EpollBackend::wait_writable(int fd, std::uint64_t user_data) {
  FdState& state = state_for(fd);
  state.write_waiter = Waiter{true, user_data};
  try_wait(fd, state.write_waiter, POLLOUT);
}

void EpollBackend::try_wait(int fd, Waiter& waiter, short events) {
  if (!waiter.active) return;
  pollfd probe{fd, events, 0};
  int ready;
  do ready = ::poll(&probe, 1, 0);
  while (ready < 0 && errno == EINTR);
  if (ready == 0) return;  // not now: the next edge completes it
  waiter.active = false;
  complete(waiter.user_data, ready < 0 ? -errno : static_cast<std::int32_t>(probe.revents));
}

void EpollBackend::try_input(int fd, FdState& state) {
  InputOp& op = state.input;
  switch (op.kind) {
    case OpKind::none:
      return;
    case OpKind::accept: {
      for (int burst = 0; burst < kAcceptBurst; ++burst) {
        const int client = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client >= 0) {
          complete(op.user_data, client, kCompletionMore);
          continue;
        }
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
          state.readable = false;
          return;
        }
        // A peer that reset before we accepted is its own problem, not the
        // listener's: keep accepting.
        if (err == ECONNABORTED || err == EINTR) continue;
        // Anything else (EMFILE, ENFILE, ENOBUFS, ENOMEM...) disarms, as a
        // multishot io_uring accept does; the owner decides when to re-arm.
        op.kind = OpKind::none;
        complete(op.user_data, -err, 0);
        return;
      }
      if (!state.queued_for_retry) {
        state.queued_for_retry = true;
        retry_.push_back(fd);
      }
      return;
    }
    case OpKind::recv: {
      ssize_t n;
      do n = ::recv(fd, op.buffer, op.length, 0);
      while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        state.readable = false;
        return;
      }
      // A short read means the socket is drained for now; the next edge says
      // when more arrives, so skip the EAGAIN round trip. Not after a hang-up:
      // a FIN that came in the same edge as the data is signalled only once,
      // and the next recv must see it (return 0), not wait for another edge.
      if (n > 0 && static_cast<std::size_t>(n) < op.length && !state.hung_up) state.readable = false;
      op.kind = OpKind::none;
      complete(op.user_data, n < 0 ? -errno : static_cast<std::int32_t>(n));
      return;
    }
    case OpKind::recvmsg:
    case OpKind::read: {
      ssize_t n;
      do {
        n = op.kind == OpKind::read ? ::read(fd, op.buffer, op.length)
                                    : ::recvmsg(fd, static_cast<msghdr*>(op.buffer), 0);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        state.readable = false;
        return;
      }
      op.kind = OpKind::none;
      complete(op.user_data, n < 0 ? -errno : static_cast<std::int32_t>(n));
      return;
    }
  }
}

void EpollBackend::try_output(int fd, FdState& state) {
  OutputOp& op = state.output;
  if (!op.active) return;
  ssize_t n;
  do n = ::sendmsg(fd, op.message, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    state.writable = false;
    return;
  }
  op.active = false;
  complete(op.user_data, n < 0 ? -errno : static_cast<std::int32_t>(n));
}

void EpollBackend::cancel(int fd) {
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
  FdState& state = fds_[static_cast<std::size_t>(fd)];
  if (state.input.kind != OpKind::none) complete(state.input.user_data, -ECANCELED);
  if (state.output.active) complete(state.output.user_data, -ECANCELED);
  if (state.read_waiter.active) complete(state.read_waiter.user_data, -ECANCELED);
  if (state.write_waiter.active) complete(state.write_waiter.user_data, -ECANCELED);
  if (state.registered) ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  // The retry list may still name fd; a reset state has nothing to retry.
  state = FdState{};
}

void EpollBackend::forget(int fd) {
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
  FdState& state = fds_[static_cast<std::size_t>(fd)];
  // close() would drop the registration too, but only if no duplicate of the
  // fd exists anywhere; deleting it explicitly does not depend on that.
  if (state.registered) ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  state = FdState{};
}

void EpollBackend::poll(std::optional<std::chrono::nanoseconds> timeout, CompletionSink& sink) {
  int timeout_ms = -1;
  if (!ready_.empty() || !retry_.empty()) {
    timeout_ms = 0;
  } else if (timeout) {
    // Round up: waking a little late is harmless, waking early spins.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*timeout).count();
    timeout_ms = ms < 0 ? 0 : (ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms));
  }

  const int count = ::epoll_wait(epoll_fd_.get(), events_.data(), static_cast<int>(events_.size()), timeout_ms);
  for (int i = 0; i < count; ++i) {
    const int fd = events_[static_cast<std::size_t>(i)].data.fd;
    const std::uint32_t ev = events_[static_cast<std::size_t>(i)].events;
    if (static_cast<std::size_t>(fd) >= fds_.size()) continue;
    FdState& state = fds_[static_cast<std::size_t>(fd)];
    if (!state.registered) continue;
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) state.hung_up = true;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      state.readable = true;
      try_input(fd, state);
      try_wait(fd, state.read_waiter, POLLIN);
    }
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
      state.writable = true;
      try_output(fd, state);
      try_wait(fd, state.write_waiter, POLLOUT);
    }
  }

  if (!retry_.empty()) {
    std::vector<int> retry;
    retry.swap(retry_);
    for (const int fd : retry) {
      FdState& state = fds_[static_cast<std::size_t>(fd)];
      state.queued_for_retry = false;
      if (state.registered && state.readable) try_input(fd, state);
    }
  }

  // Deliver from a second vector: handlers submit new operations, and those
  // that complete at once (a send into a socket with room) land in ready_.
  // Delivering them in a few more rounds here saves the epoll_wait(0) that
  // the next poll() would otherwise spend on them: the request/reply cycle
  // of one client then costs recv + sendmsg + one epoll_wait.
  constexpr int kDeliveryRounds = 4;
  for (int round = 0; round < kDeliveryRounds && !ready_.empty(); ++round) {
    delivering_.swap(ready_);
    for (const Completion& completion : delivering_) sink.on_completion(completion);
    delivering_.clear();
  }
}

}  // namespace framed::reactor
