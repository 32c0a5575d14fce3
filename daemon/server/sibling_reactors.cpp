#include "server/sibling_reactors.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cerrno>

#include "base/errno_text.hpp"
#include "reactor/reactor.hpp"

namespace framed::server {

SiblingReactors::SiblingReactors(Daemon& daemon, ShardGroup& group, reactor::BackendChoice backend,
                                 std::vector<int> pin_cpus)
    : daemon_(daemon), group_(group), backend_(backend), pin_cpus_(std::move(pin_cpus)) {}

SiblingReactors::~SiblingReactors() {
  // A failed start, or a normal end: either way every thread passes each
  // latch, in order, and is joined.
  release();
  if (!workers_stopped_once_) {
    if (loops_ended_) loops_ended_->wait();
    daemon_.stop_workers();
    workers_stopped_once_ = true;
    workers_stopped_.count_down();
  }
  for (std::thread& thread : threads_) thread.join();
}

std::vector<std::string> SiblingReactors::start(const Shard& first) {
  std::vector<std::string> errors;
  const unsigned others = group_.size() - 1;
  loops_ended_ = std::make_unique<std::latch>(others);
  // Signals are the main thread's (signalfd): no other thread takes one.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  for (unsigned index = 1; index <= others; ++index) {
    std::vector<SiblingListener> sockets;
    for (std::string& error : first.siblings_of_listeners(sockets)) errors.push_back(std::move(error));
    auto& started = *started_.emplace_back(std::make_unique<Started>());
    if (!errors.empty()) {
      // Nothing more is started; those that were wait to be let go.
      for (unsigned rest = index; rest <= others; ++rest) loops_ended_->count_down();
      break;
    }
    try {
      threads_.emplace_back([this, index, sockets = std::move(sockets), &started]() mutable {
        run(index, std::move(sockets), started);
      });
    } catch (const std::system_error& error) {
      errors.push_back("cannot start the thread of reactor " + std::to_string(index) + ": " + error.what());
      for (unsigned rest = index; rest <= others; ++rest) loops_ended_->count_down();
      break;
    }
    started.done.wait();
    for (std::string& error : started.errors) errors.push_back(std::move(error));
    if (!errors.empty()) {
      for (unsigned rest = index + 1; rest <= others; ++rest) loops_ended_->count_down();
      break;
    }
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (errors.empty()) serve_ = true;
  return errors;
}

void SiblingReactors::release() {
  if (released_once_) return;
  released_once_ = true;
  released_.count_down();
}

void SiblingReactors::begin_shutdown() {
  for (unsigned index = 1; index < group_.size(); ++index) {
    group_.post(index, [shard = &group_.shard(index)] { shard->begin_shutdown(); });
  }
}

void SiblingReactors::wait_stopped() {
  if (loops_ended_) loops_ended_->wait();
  daemon_.stop_workers();
  workers_stopped_once_ = true;
  workers_stopped_.count_down();
}

void SiblingReactors::run(unsigned index, std::vector<SiblingListener> sockets, Started& started) {
  std::unique_ptr<reactor::Reactor> reactor;
  std::unique_ptr<Shard> shard;
  try {
    if (index < pin_cpus_.size() && !pin_this_thread(pin_cpus_[index])) {
      SPDLOG_WARN("reactor {}: cannot pin it to CPU {}: {}", index, pin_cpus_[index], base::errno_text(errno));
    }
    auto selection = reactor::select_backend(backend_);
    if (!selection.backend) {
      started.errors.push_back("reactor " + std::to_string(index) + ": no I/O backend: " + selection.reason);
    } else {
      int error = 0;
      reactor = reactor::Reactor::create(std::move(selection.backend), &error);
      if (!reactor) {
        started.errors.push_back("reactor " + std::to_string(index) +
                                 ": cannot create the reactor: " + base::errno_text(error));
      } else {
        shard = std::make_unique<Shard>(*reactor, daemon_, &group_, index);
        group_.attach(index, *shard);
        started.errors = shard->start_as_sibling(std::move(sockets));
      }
    }
  } catch (const std::exception& error) {
    started.errors.push_back("reactor " + std::to_string(index) + ": " + error.what());
  }
  const bool ready = started.errors.empty();
  started.done.count_down();  // `started` may be gone from here on

  released_.wait();
  if (ready && serve_) reactor->run();
  loops_ended_->count_down();
  // The worker pool is stopped before any shard goes: a job's result is
  // posted to the shard that asked for it.
  workers_stopped_.wait();
  if (reactor) reactor->shut_down_backend();
  shard.reset();
  reactor.reset();
}

bool pin_this_thread(int cpu) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  const int error = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
  errno = error;
  return error == 0;
}

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

}  // namespace framed::server
