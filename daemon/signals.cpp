#include "signals.hpp"

#include <signal.h>

#include <cerrno>

namespace framed {

SignalWatcher::SignalWatcher(reactor::Reactor& reactor, Handler handler)
    : reactor_(reactor), handler_(std::move(handler)) {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  token_ = reactor_.register_handler(*this);
}

SignalWatcher::~SignalWatcher() {
  reactor_.unregister_handler(token_);
  reactor_.close(fd_);
}

void SignalWatcher::start() {
  if (!fd_ || armed_) return;
  armed_ = true;
  reactor_.read(token_, 0, fd_.get(), &info_, sizeof info_);
}

void SignalWatcher::on_io(std::uint8_t /*tag*/, std::int32_t result, std::uint32_t /*flags*/) {
  armed_ = false;
  if (result == -ECANCELED) return;
  if (result == static_cast<std::int32_t>(sizeof info_)) handler_(static_cast<int>(info_.ssi_signo));
  start();
}

}  // namespace framed
