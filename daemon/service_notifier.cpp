#include "service_notifier.hpp"

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <ctime>
#include <string_view>

#include "sd_notify.hpp"

namespace framed {
namespace {

// STATUS= is for people reading `systemctl status`: refreshed this often
// when no watchdog asks for more.
constexpr std::chrono::microseconds kStatusPeriod = std::chrono::seconds(5);

std::uint64_t env_number(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return 0;
  std::uint64_t value = 0;
  const std::string_view view(text);
  const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
  return error == std::errc{} && end == view.data() + view.size() ? value : 0;
}

// systemd sets WATCHDOG_PID when the variables are meant for one process
// only: a child that inherited them must not answer for the daemon.
std::chrono::microseconds watchdog_from_environment() {
  const std::uint64_t usec = env_number("WATCHDOG_USEC");
  if (usec == 0) return std::chrono::microseconds(0);
  if (std::getenv("WATCHDOG_PID") != nullptr && env_number("WATCHDOG_PID") != static_cast<std::uint64_t>(::getpid())) {
    return std::chrono::microseconds(0);
  }
  return std::chrono::microseconds(usec);
}

std::string monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000 + static_cast<std::uint64_t>(now.tv_nsec) / 1000;
  return std::to_string(usec);
}

}  // namespace

ServiceNotifier::ServiceNotifier(reactor::Reactor& reactor, std::function<std::string()> status)
    : reactor_(reactor), status_(std::move(status)) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  if (!enabled_) return;
  watchdog_ = watchdog_from_environment();
  period_ = watchdog_.count() != 0 ? std::min(watchdog_ / 2, kStatusPeriod) : kStatusPeriod;
}

ServiceNotifier::~ServiceNotifier() {
  if (timer_ != 0) reactor_.cancel_timer(timer_);
}

bool ServiceNotifier::ready() {
  if (!enabled_) return true;
  last_status_ = status_();
  std::string message = "READY=1\nSTATUS=";
  message.append(last_status_);
  const bool sent = sd_notify(message);
  if (timer_ == 0 && !stopping_) schedule();
  return sent;
}

void ServiceNotifier::reloading() {
  if (!enabled_) return;
  std::string message = "RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=";
  message.append(monotonic_usec());
  sd_notify(message);
}

void ServiceNotifier::stopping() {
  if (!enabled_) return;
  // The watchdog keeps running through the drain: a shutdown that hangs is
  // as stuck as any other reactor.
  stopping_ = true;
  sd_notify("STOPPING=1\nSTATUS=stopping: finishing open connections");
}

void ServiceNotifier::schedule() {
  timer_ = reactor_.add_timer(reactor_.now() + period_, [this] {
    timer_ = 0;
    tick();
    schedule();
  });
}

void ServiceNotifier::tick() {
  std::string message;
  if (watchdog_.count() != 0) message = "WATCHDOG=1\n";
  if (!stopping_) {
    std::string status = status_();
    if (status != last_status_) {
      message.append("STATUS=").append(status);
      last_status_ = std::move(status);
    }
  }
  if (!message.empty()) sd_notify(message);
}

}  // namespace framed
