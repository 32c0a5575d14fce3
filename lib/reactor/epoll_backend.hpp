#pragma once
// Backend on epoll, edge-triggered: the fallback where io_uring is refused
// (containers, kernel.io_uring_disabled, old kernels).
//
// Readiness is turned into completions: every fd is registered once for
// EPOLLIN | EPOLLOUT | EPOLLRDHUP with EPOLLET, the backend remembers whether
// the fd is believed readable / writable, and a submitted operation is tried
// at once when its direction is believed ready (a send usually succeeds
// without ever waiting for EPOLLOUT). EAGAIN clears the belief; the next edge
// restores it and retries the waiting operation.

#include <sys/epoll.h>

#include <cstdint>
#include <vector>

#include "base/unique_fd.hpp"
#include "reactor/backend.hpp"

namespace framed::reactor {

class EpollBackend final : public Backend {
 public:
  // Returns null and sets *error (-errno) when epoll_create1 fails.
  static std::unique_ptr<EpollBackend> create(int* error);

  [[nodiscard]] std::string_view name() const noexcept override { return "epoll"; }

  void accept(int fd, std::uint64_t user_data) override;
  void recv(int fd, void* buffer, std::size_t length, std::uint64_t user_data) override;
  void sendmsg(int fd, const msghdr* message, std::uint64_t user_data) override;
  void recvmsg(int fd, msghdr* message, std::uint64_t user_data) override;
  void read(int fd, void* buffer, std::size_t length, std::uint64_t user_data) override;
  void wait_readable(int fd, std::uint64_t user_data) override;
  void wait_writable(int fd, std::uint64_t user_data) override;
  void cancel(int fd) override;
  void forget(int fd) override;
  void poll(std::optional<std::chrono::nanoseconds> timeout, CompletionSink& sink) override;

 private:
  enum class OpKind : std::uint8_t { none, accept, recv, recvmsg, read };

  struct InputOp {
    OpKind kind = OpKind::none;
    std::uint64_t user_data = 0;
    void* buffer = nullptr;  // recv/read buffer, or the msghdr for recvmsg
    std::size_t length = 0;
  };
  struct OutputOp {
    bool active = false;
    std::uint64_t user_data = 0;
    const msghdr* message = nullptr;
  };
  // A readiness wait (wait_readable / wait_writable).
  struct Waiter {
    bool active = false;
    std::uint64_t user_data = 0;
  };
  struct FdState {
    bool registered = false;
    bool readable = false;
    bool writable = false;
    // The peer hung up (EPOLLRDHUP/HUP/ERR): reads end at once from now on,
    // and no further edge will ever say so again.
    bool hung_up = false;
    bool queued_for_retry = false;
    InputOp input;
    OutputOp output;
    Waiter read_waiter;
    Waiter write_waiter;
  };

  explicit EpollBackend(base::UniqueFd epoll_fd) : epoll_fd_(std::move(epoll_fd)) {
    // Room for a busy batch from the start: completions then queue without
    // allocating (the two vectors swap, so each keeps what it grew to).
    ready_.reserve(64);
    delivering_.reserve(64);
  }

  FdState& state_for(int fd);
  void submit_input(int fd, InputOp op);
  void try_input(int fd, FdState& state);
  void try_output(int fd, FdState& state);
  // Completes `waiter` if poll(2) says fd has `events` now; otherwise the
  // next edge will.
  void try_wait(int fd, Waiter& waiter, short events);
  void complete(std::uint64_t user_data, std::int32_t result, std::uint32_t flags = 0) {
    ready_.push_back(Completion{user_data, result, flags});
  }

  base::UniqueFd epoll_fd_;
  std::vector<FdState> fds_;       // indexed by fd: fds are small and dense
  std::vector<Completion> ready_;  // completions to deliver on the next poll()
  std::vector<Completion> delivering_;
  std::vector<int> retry_;         // fds whose accept stopped at the per-poll cap
  std::vector<epoll_event> events_ = std::vector<epoll_event>(256);
};

}  // namespace framed::reactor
