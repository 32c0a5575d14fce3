#pragma once
// The event loop: one thread, one Backend, timers, and a queue for work posted
// from other threads (the worker pool hands its results back this way).
//
// Contract:
//  * Everything here is called on the reactor thread, except post() and
//    stop_from_any_thread(), which are thread-safe.
//  * I/O is addressed through IoHandler registrations. register_handler()
//    returns an IoToken; operations submitted with it complete into
//    handler.on_io(tag, result, flags). The token carries a generation, so a
//    completion that arrives after unregister_handler() is dropped instead of
//    reaching a destroyed handler, even when the slot was reused.
//  * A handler must stay alive while it has operations in flight; it may
//    unregister and ask to be destroyed (defer()) only after their last
//    completion. Deferred functions run after the current batch of
//    completions, so a handler is never destroyed inside its own callback.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <vector>

#include "base/clock.hpp"
#include "base/unique_fd.hpp"
#include "reactor/backend.hpp"

namespace framed::reactor {

class IoHandler {
 public:
  virtual void on_io(std::uint8_t tag, std::int32_t result, std::uint32_t flags) = 0;
  // on_io threw std::bad_alloc: the handler sheds what it was doing (a
  // connection closes) so that a failed allocation costs it, not the
  // process. The default does nothing.
  virtual void on_allocation_failure() noexcept {}

 protected:
  ~IoHandler() = default;
};

struct IoToken {
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;  // 0 never names a live registration
  [[nodiscard]] bool valid() const noexcept { return generation != 0; }
};

using TimerId = std::uint64_t;

class Reactor final : private CompletionSink {
 public:
  // Takes the backend; fails (null, *error = -errno) if the wake-up eventfd
  // cannot be created.
  static std::unique_ptr<Reactor> create(std::unique_ptr<Backend> backend, int* error);
  ~Reactor();

  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  [[nodiscard]] Backend& backend() noexcept { return *backend_; }
  [[nodiscard]] std::string_view backend_name() const noexcept { return backend_name_; }

  // Runs until stop(). Each iteration: one backend poll (the only wait),
  // completions, posted work, due timers, deferred functions.
  void run();
  void stop() noexcept { running_ = false; }
  // Thread-safe.
  void stop_from_any_thread();
  // Thread-safe: runs fn on the reactor thread soon.
  void post(std::function<void()> fn);
  // Runs fn after the current batch of completions (reactor thread only).
  void defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }

  // The time of the current batch of completions: read once per batch, not
  // once per event.
  [[nodiscard]] base::TimePoint now() noexcept {
    if (!now_is_fresh_) {
      now_ = base::Clock::now();
      now_is_fresh_ = true;
    }
    return now_;
  }
  TimerId add_timer(base::TimePoint deadline, std::function<void()> fn);
  void cancel_timer(TimerId id);

  IoToken register_handler(IoHandler& handler);
  void unregister_handler(IoToken token);

  // Operations, see Backend for their semantics.
  void accept(IoToken token, std::uint8_t tag, int fd) { backend_->accept(fd, encode(token, tag)); }
  void recv(IoToken token, std::uint8_t tag, int fd, void* buffer, std::size_t length) {
    backend_->recv(fd, buffer, length, encode(token, tag));
  }
  void sendmsg(IoToken token, std::uint8_t tag, int fd, const msghdr* message) {
    backend_->sendmsg(fd, message, encode(token, tag));
  }
  void recvmsg(IoToken token, std::uint8_t tag, int fd, msghdr* message) {
    backend_->recvmsg(fd, message, encode(token, tag));
  }
  void read(IoToken token, std::uint8_t tag, int fd, void* buffer, std::size_t length) {
    backend_->read(fd, buffer, length, encode(token, tag));
  }
  void wait_readable(IoToken token, std::uint8_t tag, int fd) { backend_->wait_readable(fd, encode(token, tag)); }
  void wait_writable(IoToken token, std::uint8_t tag, int fd) { backend_->wait_writable(fd, encode(token, tag)); }
  void cancel(int fd) {
    if (backend_) backend_->cancel(fd);
  }
  // forget() (see Backend), then close: the one way handlers close their fds.
  void close(base::UniqueFd& fd) {
    if (!fd) return;
    if (backend_) backend_->forget(fd.get());
    fd.reset();
  }

  // Tears the backend down (the ring or the epoll set), dropping every
  // operation still queued, so that the kernel holds no buffer of a handler
  // when the handlers are destroyed afterwards. Call after run() returns and
  // before destroying the handlers; close() and cancel() are no-ops after it.
  void shut_down_backend() noexcept;

  // Allocations that failed in a handler, timer or deferred function: each
  // cost what it was doing (a connection), never the process.
  [[nodiscard]] std::uint64_t allocation_failures() const noexcept { return allocation_failures_; }

 private:
  // user_data layout: slot (32 bits) | generation (24 bits) | tag (8 bits).
  // Zero is never produced (generations start at 1), so backends may use it
  // for their own internal operations.
  static std::uint64_t encode(IoToken token, std::uint8_t tag) noexcept {
    return (std::uint64_t{token.slot} << 32) | (std::uint64_t{token.generation & 0xFFFFFF} << 8) | tag;
  }

  struct Slot {
    IoHandler* handler = nullptr;
    std::uint32_t generation = 0;
  };
  struct Timer {
    base::TimePoint deadline;
    TimerId id;
    bool operator>(const Timer& other) const noexcept { return deadline > other.deadline; }
  };

  Reactor(std::unique_ptr<Backend> backend, base::UniqueFd wake_fd);
  void on_completion(const Completion& completion) override;
  void arm_wake_read();
  void run_posted();
  void run_due_timers();
  void run_deferred();
  // Runs a timer's or a deferred function; a std::bad_alloc it throws is
  // counted, not let out of the loop.
  void run_guarded(std::function<void()>& fn);

  std::unique_ptr<Backend> backend_;
  std::string_view backend_name_;  // names are string literals
  bool running_ = false;
  bool now_is_fresh_ = false;  // now_ was read during the current batch
  base::TimePoint now_ = base::Clock::now();

  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_slots_;

  // A timer's function lives in a reused slot, so arming one allocates
  // nothing once the slots exist (a hash map would allocate a node per
  // timer). A TimerId is the slot's generation and its index + 1, never 0;
  // a heap entry whose id no longer matches its slot was cancelled.
  struct TimerSlot {
    std::function<void()> fn;
    std::uint32_t generation = 0;
    bool armed = false;
  };
  // The slot index `id` names (the id's low half is the index + 1; an id
  // of 0 wraps to an index past any slot).
  static std::uint32_t timer_index(TimerId id) noexcept { return static_cast<std::uint32_t>(id) - 1; }
  // The armed slot `id` names, or null (cancelled, run, or never armed).
  TimerSlot* armed_timer(TimerId id) noexcept;
  // Disarms the armed timer `id` and frees its slot.
  void release_timer(TimerId id);

  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timer_heap_;
  std::vector<TimerSlot> timer_slots_;
  std::vector<std::uint32_t> free_timer_slots_;

  std::vector<std::function<void()>> deferred_;
  std::vector<std::function<void()>> running_deferred_;
  std::uint64_t allocation_failures_ = 0;

  // Cross-thread wake-up: an eventfd the reactor keeps a read armed on.
  class WakeHandler;
  std::unique_ptr<WakeHandler> wake_handler_;
  base::UniqueFd wake_fd_;
  std::uint64_t wake_value_ = 0;
  IoToken wake_token_;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  std::vector<std::function<void()>> running_posted_;
};

}  // namespace framed::reactor
