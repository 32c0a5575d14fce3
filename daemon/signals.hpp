#pragma once
// Signals as events on the reactor: SIGTERM, SIGINT and SIGHUP are blocked
// and read from a signalfd, so their handling runs on the reactor thread
// like any other event (no async-signal-safety puzzles). SIGPIPE is ignored:
// a peer that vanishes is an error value from send(), never a death.

#include <functional>
#include <new>
#include <sys/signalfd.h>

#include "base/unique_fd.hpp"
#include "reactor/reactor.hpp"

namespace framed {

class SignalWatcher final : public reactor::IoHandler {
 public:
  using Handler = std::function<void(int signal)>;

  // Blocks the signals in the calling thread (call before any other thread
  // starts, so every thread inherits the mask) and ignores SIGPIPE.
  // Returns an invalid watcher (valid() false) if signalfd fails.
  SignalWatcher(reactor::Reactor& reactor, Handler handler);
  ~SignalWatcher();

  [[nodiscard]] bool valid() const noexcept { return fd_.valid(); }
  void start();

  void on_io(std::uint8_t tag, std::int32_t result, std::uint32_t flags) override;
  // A signal's handling ran out of memory: the next signal is still read.
  void on_allocation_failure() noexcept override {
    try {
      start();
    } catch (const std::bad_alloc&) {
    }
  }

 private:
  reactor::Reactor& reactor_;
  Handler handler_;
  base::UniqueFd fd_;
  reactor::IoToken token_;
  signalfd_siginfo info_{};
  bool armed_ = false;
};

}  // namespace framed
