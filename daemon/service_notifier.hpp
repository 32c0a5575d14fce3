#pragma once
// What the daemon tells its service manager (sd_notify(3), CONFIG.md):
// READY=1 once serving and after each reload, RELOADING=1 with
// MONOTONIC_USEC= when a reload starts, STOPPING=1, STATUS= lines with the
// connection count, and WATCHDOG=1 at half of $WATCHDOG_USEC.
//
// The watchdog ping and the status line come from a timer on the reactor:
// a reactor that is stuck stops sending them, and systemd's watchdog then
// restarts the daemon, which is the point. Without $NOTIFY_SOCKET every
// call is a no-op and no timer runs.
//
// Reactor thread only.

#include <chrono>
#include <functional>
#include <string>

#include "reactor/reactor.hpp"

namespace framed {

class ServiceNotifier {
 public:
  // `status` describes the daemon for a STATUS= line ("12 connections...").
  ServiceNotifier(reactor::Reactor& reactor, std::function<std::string()> status);
  ~ServiceNotifier();

  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // READY=1 (and the status); starts the periodic timer the first time.
  // False when $NOTIFY_SOCKET is set but the message could not be sent.
  bool ready();
  void reloading();
  void stopping();

  // The watchdog interval systemd asked for (zero: none), and how often the
  // timer runs.
  [[nodiscard]] std::chrono::microseconds watchdog_interval() const noexcept { return watchdog_; }
  [[nodiscard]] std::chrono::microseconds period() const noexcept { return period_; }

 private:
  void tick();
  void schedule();

  reactor::Reactor& reactor_;
  std::function<std::string()> status_;
  bool enabled_;
  std::chrono::microseconds watchdog_{0};
  std::chrono::microseconds period_{0};
  std::string last_status_;
  reactor::TimerId timer_ = 0;
  bool stopping_ = false;
};

}  // namespace framed
