#include "reactor/uring_backend.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <limits>

namespace framed::reactor {
namespace {

// SQ size: how many operations can be queued between two polls before
// next_sqe() has to submit early. One batch of completions rarely submits
// more than a few per connection, so 1024 keeps early submits rare.
constexpr unsigned kSqEntries = 1024;
// The CQ must be larger than the SQ: every connection keeps a recv (and
// perhaps a send) in flight, so the operations outstanding at once are not
// bounded by what one submit carries, and a multishot accept posts one CQE
// per connection from a single SQE. The kernel keeps CQEs that do not fit
// (IORING_FEAT_NODROP, required below), but an overflowing CQ makes it take
// a slow path and may refuse submissions (-EBUSY) until we catch up.
constexpr unsigned kCqEntries = 8192;

// Tried in order until the kernel accepts one: each step drops what a older
// kernel refuses with -EINVAL.
//  * SUBMIT_ALL (5.18): one bad SQE does not stop the rest of the batch.
//  * COOP_TASKRUN (5.19): completions are not pushed to us with an IPI; we
//    collect them when we enter the kernel anyway, once per loop iteration.
//  * SINGLE_ISSUER (6.0) + DEFER_TASKRUN (6.1): only the reactor thread
//    submits, and completion work runs when it waits, in batches.
constexpr unsigned kSetupFlagSets[] = {
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER,
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
    IORING_SETUP_SUBMIT_ALL,
    0,
};

// What this backend cannot work without (all present since 5.11):
//  * NODROP: a full CQ must not lose completions, or "each operation
//    completes exactly once" breaks.
//  * EXT_ARG: the wait takes its timeout as an argument; without it liburing
//    queues a timeout SQE of its own, whose CQE we would have to filter.
//  * RW_CUR_POS: read() at offset -1 means "the file position", like read(2).
//  * FAST_POLL: a recv on an empty socket waits on the socket's poll queue
//    instead of blocking a kernel worker thread.
constexpr unsigned kRequiredFeatures =
    IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_RW_CUR_POS | IORING_FEAT_FAST_POLL;

// user_data of the backend's own SQEs (cancels). The Reactor never uses 0.
constexpr std::uint64_t kInternalUserData = 0;

// Accepted sockets are born non-blocking and close-on-exec, as the Backend
// contract promises (same flags as the epoll backend's accept4).
constexpr int kAcceptFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;

// read() at offset -1: use (and advance) the file position, which is what
// read(2) does. eventfd and signalfd ignore the position either way.
constexpr __u64 kCurrentPosition = ~__u64{0};

// A result must fit in the CQE's int32; the kernel caps a single transfer
// below INT_MAX anyway (MAX_RW_COUNT).
unsigned clamp_length(std::size_t length) {
  return static_cast<unsigned>(std::min<std::size_t>(length, std::numeric_limits<std::int32_t>::max()));
}

}  // namespace

std::unique_ptr<UringBackend> UringBackend::create(int* error) { return create(error, UringOptions{}); }

std::unique_ptr<UringBackend> UringBackend::create(int* error, UringOptions options) {
  std::unique_ptr<UringBackend> backend(new UringBackend());  // private ctor

  int result = -EINVAL;
  io_uring_params params{};
  for (const unsigned flags : kSetupFlagSets) {
    params = io_uring_params{};
    params.flags = flags | IORING_SETUP_CQSIZE;
    params.cq_entries = kCqEntries;
    result = io_uring_queue_init_params(kSqEntries, &backend->ring_, &params);
    // -EINVAL: this kernel does not know a flag; try the next set. Anything
    // else (EPERM from seccomp or io_uring_disabled, ENOSYS, ENOMEM from
    // RLIMIT_MEMLOCK) is not about flags: give up and let the caller fall
    // back to epoll.
    if (result != -EINVAL) break;
  }
  if (result < 0) {
    *error = result;
    return nullptr;
  }
  backend->ring_ready_ = true;  // from here on the destructor tears the ring down
  backend->owner_thread_ = std::this_thread::get_id();

  if ((params.features & kRequiredFeatures) != kRequiredFeatures) {
    *error = -EOPNOTSUPP;
    return nullptr;
  }

  backend->multishot_accept_ = options.multishot_accept;

  // Cancelling by fd with IORING_ASYNC_CANCEL_ALL (5.19) is probed once here
  // rather than discovered on the first cancel(): that cancel's CQE carries
  // user_data 0 and no fd, so by then we could no longer tell which socket
  // to shut down instead. The ring's own fd has nothing outstanding: a
  // kernel that knows the flags answers with a count (0) or -ENOENT, an
  // older one rejects the flags with -EINVAL.
  backend->cancel_by_fd_ = false;
  if (options.cancel_by_fd) {
    io_uring* ring = &backend->ring_;
    io_uring_sqe* sqe = io_uring_get_sqe(ring);  // the ring is empty: never null
    io_uring_prep_cancel_fd(sqe, ring->ring_fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, kInternalUserData);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit_and_wait(ring, 1) >= 0 && io_uring_peek_cqe(ring, &cqe) == 0 && cqe != nullptr) {
      backend->cancel_by_fd_ = cqe->res != -EINVAL;
      io_uring_cqe_seen(ring, cqe);
    }
  }
  return backend;
}

UringBackend::~UringBackend() {
  // Closing the ring makes the kernel cancel whatever is still in flight.
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* UringBackend::next_sqe() {
  if (backlog_.empty()) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    // The SQ is full: hand it to the kernel to make room. This only submits;
    // completions stay in the CQ until poll() delivers them, so no caller is
    // re-entered from here.
    io_uring_submit(&ring_);
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
  }
  // The kernel would not take the batch (-EAGAIN: short of memory; -EBUSY:
  // CQ overflow backlog on older kernels), or earlier SQEs already wait
  // here. Never drop an operation: prepare it in the backlog, behind the
  // others so that a cancel still follows the operations it cancels, and let
  // poll() push it later. A value-initialised SQE is all zeroes, as a ring
  // SQE is expected to be before io_uring_prep_*.
  return &backlog_.emplace_back();
}

void UringBackend::flush_backlog() {
  std::size_t moved = 0;
  while (moved < backlog_.size()) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      if (io_uring_submit(&ring_) <= 0) break;
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;
    }
    *sqe = backlog_[moved++];
  }
  backlog_.erase(backlog_.begin(), backlog_.begin() + static_cast<std::ptrdiff_t>(moved));
}

UringBackend::Listener* UringBackend::find_listener_by_fd(int fd) {
  for (Listener& listener : listeners_) {
    if (listener.fd == fd) return &listener;
  }
  return nullptr;
}

void UringBackend::accept(int fd, std::uint64_t user_data) {
  Listener* listener = find_listener_by_fd(fd);
  if (listener == nullptr) listener = &listeners_.emplace_back();
  *listener = Listener{};
  listener->fd = fd;
  listener->user_data = user_data;
  listener->multishot = multishot_accept_;
  arm_accept(*listener);
}

// Multishot accept: one SQE keeps accepting, posting a CQE per connection
// with IORING_CQE_F_MORE while it stays armed. That saves an SQE and a
// submit per connection under a connection storm, and matches the Backend
// contract's "armed until a completion without kCompletionMore".
void UringBackend::arm_accept(const Listener& listener) {
  io_uring_sqe* sqe = next_sqe();
  if (listener.multishot) {
    io_uring_prep_multishot_accept(sqe, listener.fd, nullptr, nullptr, kAcceptFlags);
  } else {
    io_uring_prep_accept(sqe, listener.fd, nullptr, nullptr, kAcceptFlags);
  }
  io_uring_sqe_set_data64(sqe, listener.user_data);
}

void UringBackend::recv(int fd, void* buffer, std::size_t length, std::uint64_t user_data) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_recv(sqe, fd, buffer, clamp_length(length), 0);
  io_uring_sqe_set_data64(sqe, user_data);
}

void UringBackend::sendmsg(int fd, const msghdr* message, std::uint64_t user_data) {
  io_uring_sqe* sqe = next_sqe();
  // MSG_NOSIGNAL: a peer that went away is an -EPIPE result, not a SIGPIPE
  // that kills the daemon.
  io_uring_prep_sendmsg(sqe, fd, message, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, user_data);
}

void UringBackend::recvmsg(int fd, msghdr* message, std::uint64_t user_data) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_recvmsg(sqe, fd, message, 0);
  io_uring_sqe_set_data64(sqe, user_data);
}

void UringBackend::read(int fd, void* buffer, std::size_t length, std::uint64_t user_data) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_read(sqe, fd, buffer, clamp_length(length), kCurrentPosition);
  io_uring_sqe_set_data64(sqe, user_data);
}

// One-shot POLL_ADD: the kernel answers with the poll(2) events, as the
// Backend contract has it.
void UringBackend::wait_readable(int fd, std::uint64_t user_data) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_poll_add(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, user_data);
}

void UringBackend::wait_writable(int fd, std::uint64_t user_data) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_poll_add(sqe, fd, POLLOUT);
  io_uring_sqe_set_data64(sqe, user_data);
}

void UringBackend::cancel(int fd) {
  // Whatever the accept's last CQE says, it is final now.
  for (Listener& listener : listeners_) {
    if (listener.fd == fd) listener.cancelled = true;
  }
  if (cancel_by_fd_) {
    // One SQE finds every request on fd (IORING_ASYNC_CANCEL_ALL), whatever
    // its user_data: each of them then completes once, with -ECANCELED or,
    // if it was already finishing, its real result. The cancel is queued
    // behind the operations it targets, so the kernel has them in hand when
    // it runs. Its own CQE (a count) carries user_data 0 and is swallowed.
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, kInternalUserData);
    return;
  }
  // Kernels before 5.19 cannot cancel by fd, and this backend keeps no
  // record of which user_data is outstanding on which fd (the hot path would
  // pay for it) to cancel them one by one. Shutting the socket down ends
  // every pending operation on it with a real result instead: recv gets 0,
  // sendmsg -EPIPE, accept -EINVAL. Only sockets can be ended this way; the
  // only non-socket reads (eventfd, signalfd) live as long as the reactor.
  ::shutdown(fd, SHUT_RDWR);
}

void UringBackend::on_accept_completion(std::size_t index, const Cqe& cqe, CompletionSink& sink) {
  Listener& listener = listeners_[index];
  const std::uint64_t user_data = listener.user_data;
  if (listener.multishot && cqe.result != -EINVAL) listener.multishot_proven = true;

  if ((cqe.flags & IORING_CQE_F_MORE) != 0) {
    sink.on_completion(Completion{user_data, cqe.result, kCompletionMore});
    return;
  }

  // The SQE is finished: a single-shot accept, or a multishot one the kernel
  // ended. Decide whether the caller's accept stays armed.
  if (!listener.cancelled) {
    if (cqe.result == -EINVAL && listener.multishot && !listener.multishot_proven) {
      // Kernels before 5.19 reject IORING_ACCEPT_MULTISHOT with -EINVAL.
      // (A socket that is not listening gives the same error; the
      // single-shot retry then reports it to the caller.)
      listener.multishot = false;
      listener.probing_single = true;
      arm_accept(listener);
      return;
    }
    // Re-armed without the caller knowing: a single-shot accept after each
    // connection; a multishot one the kernel stopped after a success (it
    // does when the CQ overflows); and connections reset before we took
    // them (-ECONNABORTED) or an interrupted accept (-EINTR), which say
    // nothing about the listener.
    if (cqe.result >= 0 || cqe.result == -ECONNABORTED || cqe.result == -EINTR) {
      if (listener.probing_single && cqe.result >= 0) {
        // Single-shot works where multishot did not: start every listener
        // single-shot from now on.
        multishot_accept_ = false;
        listener.probing_single = false;
      }
      arm_accept(listener);
      if (cqe.result >= 0) sink.on_completion(Completion{user_data, cqe.result, kCompletionMore});
      return;
    }
  }

  // Disarmed: cancelled (whatever the result, even a connection that raced
  // the cancel), or an error the owner must see (EMFILE, ENFILE, ENOBUFS...)
  // and re-arm after a back-off. Erase first: the sink may call accept().
  listeners_.erase(listeners_.begin() + static_cast<std::ptrdiff_t>(index));
  sink.on_completion(Completion{user_data, cqe.result, 0});
}

void UringBackend::poll(std::optional<std::chrono::nanoseconds> timeout, CompletionSink& sink) {
  // The ring may be SINGLE_ISSUER: any other thread's submit fails.
  assert(std::this_thread::get_id() == owner_thread_);

  flush_backlog();
  // Whatever is still in the backlog must go out soon: do not sleep on it.
  if (!backlog_.empty()) timeout = std::chrono::nanoseconds{0};

  __kernel_timespec limit{};
  __kernel_timespec* wait_limit = nullptr;  // null: wait for a completion, however long
  if (timeout) {
    constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
    const std::int64_t nanos = std::max<std::int64_t>(timeout->count(), 0);
    limit.tv_sec = nanos / kNanosPerSecond;
    limit.tv_nsec = nanos % kNanosPerSecond;
    wait_limit = &limit;
  }

  // Submit and wait in one io_uring_enter. A zero limit still enters with
  // GETEVENTS when the CQ is empty, which runs the completion work that
  // DEFER_TASKRUN holds back, so even "don't wait" sees what is ready.
  // The result is not needed: on success, and on -ETIME (the limit passed),
  // -EINTR (a signal), -EAGAIN / -EBUSY (the kernel could not take the
  // submissions now; they stay in the SQ for the next call), the CQ below
  // holds exactly what has completed, possibly nothing.
  io_uring_cqe* first = nullptr;
  (void)io_uring_submit_and_wait_timeout(&ring_, &first, 1, wait_limit, nullptr);

  // Copy the batch out and release the CQ slots before delivering: handlers
  // submit new operations, and with the CQ already advanced nothing they do
  // can disturb this iteration.
  unsigned head = 0;
  unsigned count = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    batch_.push_back(Cqe{cqe->user_data, cqe->res, cqe->flags});
    ++count;
  }
  io_uring_cq_advance(&ring_, count);

  for (const Cqe& completion : batch_) {
    if (completion.user_data == kInternalUserData) continue;  // our cancels
    // Few listeners (usually one or two): a scan costs less than a map.
    auto listener = std::find_if(listeners_.begin(), listeners_.end(),
                                 [&](const Listener& l) { return l.user_data == completion.user_data; });
    if (listener != listeners_.end()) {
      on_accept_completion(static_cast<std::size_t>(listener - listeners_.begin()), completion, sink);
      continue;
    }
    // Single-shot operations: the kernel's flags (e.g. SOCK_NONEMPTY) are
    // not part of the Backend contract.
    sink.on_completion(Completion{completion.user_data, completion.result, 0});
  }
  batch_.clear();
}

}  // namespace framed::reactor
