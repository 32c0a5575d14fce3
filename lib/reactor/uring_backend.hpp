#pragma once
// Backend on io_uring (liburing). See backend.hpp for the contract it keeps.
//
// Operations go to the kernel as they are: recv, sendmsg, recvmsg, read and
// the readiness waits (POLL_ADD) are single-shot SQEs, accept is one multishot SQE per listener. The SQE's
// user_data is the caller's user_data, untouched (the Reactor already packs
// handler slot, generation and tag into it), so the common completion needs
// no lookup. user_data 0, which the Reactor never produces, marks the
// backend's own operations (cancels); their completions are swallowed.
//
// The backend keeps state only for listeners, because accept is the one
// operation it re-arms by itself (see uring_backend.cpp). That state is found
// by user_data, hence one extra rule on top of the Backend contract: an
// accept's user_data is not shared with any other outstanding operation.
//
// Thread: create the backend on the thread that will call poll(). The ring is
// set up IORING_SETUP_SINGLE_ISSUER where the kernel allows it, and the kernel
// then refuses submissions from any other thread.

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "reactor/backend.hpp"

namespace framed::reactor {

// What the backend may use of the kernel. The defaults use everything the
// kernel offers; tests switch features off to run the fallbacks that older
// kernels take.
struct UringOptions {
  bool multishot_accept = true;  // false: single-shot accepts, re-armed internally (kernels < 5.19)
  bool cancel_by_fd = true;      // false: cancel() shuts the socket down (kernels < 5.19)
};

class UringBackend final : public Backend {
 public:
  // Really creates a ring: returns null and sets *error (-errno) when the
  // kernel, a seccomp filter or kernel.io_uring_disabled refuses, or when the
  // kernel's io_uring is too old for this backend (-EOPNOTSUPP).
  static std::unique_ptr<UringBackend> create(int* error);
  static std::unique_ptr<UringBackend> create(int* error, UringOptions options);
  ~UringBackend() override;

  UringBackend(const UringBackend&) = delete;
  UringBackend& operator=(const UringBackend&) = delete;

  [[nodiscard]] std::string_view name() const noexcept override { return "io_uring"; }

  void accept(int fd, std::uint64_t user_data) override;
  void recv(int fd, void* buffer, std::size_t length, std::uint64_t user_data) override;
  void sendmsg(int fd, const msghdr* message, std::uint64_t user_data) override;
  void recvmsg(int fd, msghdr* message, std::uint64_t user_data) override;
  void read(int fd, void* buffer, std::size_t length, std::uint64_t user_data) override;
  void wait_readable(int fd, std::uint64_t user_data) override;
  void wait_writable(int fd, std::uint64_t user_data) override;
  void cancel(int fd) override;
  void poll(std::optional<std::chrono::nanoseconds> timeout, CompletionSink& sink) override;

 private:
  // An armed accept, from the caller's point of view. It lives from accept()
  // until the completion without kCompletionMore is delivered.
  struct Listener {
    int fd = -1;
    std::uint64_t user_data = 0;
    bool multishot = true;         // kind of the SQE currently in flight
    bool multishot_proven = false; // a multishot SQE completed other than with -EINVAL
    bool probing_single = false;   // multishot was refused; does single-shot work?
    bool cancelled = false;        // cancel(fd) was called: never re-arm again
  };

  // A CQE copied out of the ring (io_uring_cqe itself ends in a flexible
  // array, which C++ cannot hold in a vector).
  struct Cqe {
    std::uint64_t user_data;
    std::int32_t result;
    std::uint32_t flags;  // IORING_CQE_F_*, not yet translated
  };

  UringBackend() = default;
  io_uring_sqe* next_sqe();
  void flush_backlog();
  void arm_accept(const Listener& listener);
  void on_accept_completion(std::size_t index, const Cqe& cqe, CompletionSink& sink);
  Listener* find_listener_by_fd(int fd);

  io_uring ring_{};
  bool ring_ready_ = false;  // io_uring_queue_exit only after a successful init
  bool multishot_accept_ = true;
  bool cancel_by_fd_ = true;
  std::thread::id owner_thread_;
  std::vector<Listener> listeners_;  // few: one per listening socket
  // SQEs the kernel would not take yet (it refused a submit while the SQ was
  // full); pushed, in order, ahead of everything else on the next poll().
  std::vector<io_uring_sqe> backlog_;
  std::vector<Cqe> batch_;  // CQEs being delivered by poll()
};

}  // namespace framed::reactor
