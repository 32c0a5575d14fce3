#include "exec/worker_pool.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace framed::exec {
namespace {

// A new thread inherits its creator's signal mask: block everything in the
// creating thread for the moment of creation, so that the worker never has
// a window in which a signal meant for the reactor's signalfd could land on
// it (the pool may be started before the daemon blocks its signals).
class AllSignalsBlocked {
 public:
  AllSignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~AllSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  AllSignalsBlocked(const AllSignalsBlocked&) = delete;
  AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;

 private:
  sigset_t saved_{};
};

}  // namespace

WorkerPool::WorkerPool(std::size_t max_queued)
    : max_queued_(max_queued), cancel_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  CPU_ZERO(&allowed_cpus_);
  if (::sched_getaffinity(0, sizeof allowed_cpus_, &allowed_cpus_) != 0) allowed_cpus_valid_ = false;
}

WorkerPool::~WorkerPool() { shutdown(); }

bool WorkerPool::try_submit(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || live_ == 0) return false;
    // Workers that are not running a job take one as soon as they wake (or,
    // just started, reach their loop), so that many may be queued on top of
    // max_queued: "waiting" means waiting for a busy worker to finish.
    const unsigned workers = std::min(live_, target_);
    const std::size_t takers = workers > busy_ ? workers - busy_ : 0;
    if (queue_.size() >= takers + max_queued_) return false;
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void WorkerPool::work(Worker& self) {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty() || live_ > target_; });
    // A queued job comes before leaving a shrunk pool; shutdown drops it.
    if (stopping_ || queue_.empty()) break;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    try {
      job();
    } catch (...) {
      // See the header: the job owed its requester an answer; the worker
      // itself must survive.
    }
    job = nullptr;  // its captures are released outside the lock
    lock.lock();
    --busy_;
  }
  --live_;
  self.finished = true;
}

std::error_code WorkerPool::resize(unsigned threads) {
  threads = std::max(threads, 1U);
  std::list<Worker> finished;
  std::error_code error;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return std::make_error_code(std::errc::operation_canceled);
    take_finished(finished);
    target_ = threads;
    // Threads that are leaving but have not yet left still count as live:
    // with the target raised again they simply stay.
    while (live_ < target_) {
      Worker& worker = workers_.emplace_back();
      try {
        const AllSignalsBlocked blocked;
        // It waits for mutex_, which is held here, before touching anything.
        worker.thread = std::thread([this, &worker] {
          // Every CPU the process had: a reactor pinned to one
          // (daemon.pin_reactors) may be the thread that starts a worker.
          if (allowed_cpus_valid_) ::sched_setaffinity(0, sizeof allowed_cpus_, &allowed_cpus_);
          work(worker);
        });
      } catch (const std::system_error& e) {
        workers_.pop_back();
        error = e.code();
        target_ = std::max(live_, 1U);
        break;
      }
      ++live_;
    }
  }
  wake_.notify_all();  // shrinking: idle workers leave
  for (Worker& worker : finished) worker.thread.join();
  return error;
}

void WorkerPool::set_max_queued(std::size_t max_queued) {
  std::lock_guard lock(mutex_);
  max_queued_ = max_queued;
}

void WorkerPool::take_finished(std::list<Worker>& out) {
  for (auto it = workers_.begin(); it != workers_.end();) {
    const auto next = std::next(it);
    if (it->finished) out.splice(out.end(), workers_, it);
    it = next;
  }
}

void WorkerPool::shutdown() noexcept {
  std::deque<Job> dropped;
  std::list<Worker> workers;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped.swap(queue_);
    // Splicing moves no node: each thread's reference to its Worker stays valid.
    workers.splice(workers.end(), workers_);
  }
  if (cancel_fd_) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(cancel_fd_.get(), &one, sizeof one);
  }
  wake_.notify_all();
  for (Worker& worker : workers) {
    if (!worker.thread.joinable()) continue;
    try {
      worker.thread.join();
    } catch (const std::system_error&) {
      // Only when called from a worker itself, which the contract excludes.
      worker.thread.detach();
    }
  }
}

unsigned WorkerPool::threads() const {
  std::lock_guard lock(mutex_);
  return target_;
}

unsigned WorkerPool::busy() const {
  std::lock_guard lock(mutex_);
  return busy_;
}

std::size_t WorkerPool::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

unsigned available_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return static_cast<unsigned>(count);
  }
  return std::max(std::thread::hardware_concurrency(), 1U);
}

}  // namespace framed::exec
