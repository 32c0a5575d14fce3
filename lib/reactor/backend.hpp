#pragma once
// The I/O backend behind the reactor, shaped around operations (accept, recv,
// send, read) and their completions rather than around readiness. io_uring is
// completion-based by nature; the epoll backend turns readiness into
// completions by performing the syscall itself when the fd is ready. Callers
// see the same semantics from both:
//
//  * Each submitted operation completes exactly once, with the caller's
//    user_data and a result (>= 0: bytes or new fd; < 0: -errno), except
//    accept, which is multishot: it completes once per accepted connection
//    with kCompletionMore set, and a completion *without* kCompletionMore
//    (an error such as -EMFILE, or -ECANCELED) means it is no longer armed.
//  * Buffers, iovecs and msghdrs passed in must stay valid and untouched until
//    the operation completes.
//  * At most one operation of each kind may be outstanding per fd (one recv,
//    one send, ...): callers keep that rule, backends rely on it.
//  * cancel(fd) must be called before an fd with outstanding operations is
//    closed; each outstanding operation then completes (with -ECANCELED or,
//    if it raced, its real result). Only after the last completion may the fd
//    be closed and the memory behind the operations freed.
//  * Completions are delivered only from poll(), never from inside a submit
//    call, so a submitter is never re-entered.
//  * Every fd created by a backend (accepted sockets) is SOCK_NONBLOCK |
//    SOCK_CLOEXEC. Sends use MSG_NOSIGNAL.
//
// Thread-safety: none. A backend belongs to the reactor thread. Cross-thread
// wake-ups go through an eventfd that the reactor reads with read().

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace framed::reactor {

inline constexpr std::uint32_t kCompletionMore = 1U << 0;

struct Completion {
  std::uint64_t user_data;
  std::int32_t result;
  std::uint32_t flags;
};

// Receives completions from Backend::poll(). on_completion may submit new
// operations (they are queued, and sent to the kernel on the next poll).
class CompletionSink {
 public:
  virtual void on_completion(const Completion& completion) = 0;

 protected:
  ~CompletionSink() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;

  [[nodiscard]] virtual std::string_view name() const noexcept = 0;

  // Multishot accept on a listening socket (see above).
  virtual void accept(int fd, std::uint64_t user_data) = 0;
  // One recv(2) on a stream socket; result 0 means the peer shut down its side.
  virtual void recv(int fd, void* buffer, std::size_t length, std::uint64_t user_data) = 0;
  // One sendmsg(2); the result may be a short count, which the caller resubmits.
  virtual void sendmsg(int fd, const msghdr* message, std::uint64_t user_data) = 0;
  // One recvmsg(2), for datagram sockets (msg_name receives the sender).
  virtual void recvmsg(int fd, msghdr* message, std::uint64_t user_data) = 0;
  // One read(2) on a non-socket fd (eventfd, signalfd).
  virtual void read(int fd, void* buffer, std::size_t length, std::uint64_t user_data) = 0;
  // Readiness, for a library that does its own I/O on an fd (hiredis): one
  // wait that completes once the fd is readable (or writable), with the
  // poll(2) events that hold then (POLLIN / POLLOUT, POLLERR, POLLHUP), or
  // -errno. Level-triggered: a wait submitted while the fd is ready completes
  // at once. A read wait and a write wait are two kinds: one of each may be
  // outstanding per fd. Such an fd takes no other operation.
  virtual void wait_readable(int fd, std::uint64_t user_data) = 0;
  virtual void wait_writable(int fd, std::uint64_t user_data) = 0;
  // Ends every outstanding operation on fd (see above).
  virtual void cancel(int fd) = 0;
  // Must be called just before an fd that was ever used here is closed (its
  // operations all completed): fd numbers are reused at once by the kernel,
  // and a backend that keeps per-fd state (epoll) must not mistake the next
  // socket with that number for this one.
  virtual void forget(int /*fd*/) {}

  // Sends queued submissions to the kernel, waits until at least one
  // completion is ready or the timeout passes (nullopt: no timeout; zero: do
  // not wait), then delivers every ready completion to sink. One syscall per
  // call in the common case: this is the loop's only blocking point.
  virtual void poll(std::optional<std::chrono::nanoseconds> timeout, CompletionSink& sink) = 0;
};

enum class BackendChoice { automatic, io_uring, epoll };

struct BackendSelection {
  std::unique_ptr<Backend> backend;  // null on failure
  std::string reason;                // why this backend (or why none), for the log
};

// Creates the backend asked for. `automatic` tries io_uring by really creating
// a ring (probing is the only reliable test: seccomp, kernel.io_uring_disabled
// and RLIMIT_MEMLOCK all refuse at setup time) and falls back to epoll.
// `io_uring` fails rather than falls back.
BackendSelection select_backend(BackendChoice choice);

// Parses "auto" | "io_uring" | "epoll".
std::optional<BackendChoice> parse_backend_choice(std::string_view text);

}  // namespace framed::reactor
