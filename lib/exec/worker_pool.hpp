#pragma once
// A fixed set of threads running jobs from a bounded queue: the blocking work
// (exec, file I/O) that must never run on the reactor thread.
//
// Contract:
//  * try_submit() never blocks (beyond a short mutex hold) and never grows
//    the queue past its bound: when every worker is busy and max_queued jobs
//    are already waiting it returns false, and the caller answers too_busy.
//  * Jobs run on a worker thread, in submission order as workers free up.
//    A job owns everything it uses (copies, not views of a connection's
//    buffers) and hands its result back to the reactor thread itself, with
//    Reactor::post(). The pool never touches the reactor.
//  * Jobs must not throw; an exception escaping one is swallowed so that the
//    worker survives, and the job's requester never gets its answer.
//  * Worker threads start with every signal blocked: signals are the
//    reactor's (signalfd), and a SIGTERM delivered to a worker would kill the
//    daemon before the signalfd could see it.
//  * shutdown() (also the destructor): queued jobs are dropped unrun,
//    cancel_fd() becomes readable so that running jobs stop early (run_child
//    polls it), and every thread is joined. After it, try_submit() returns
//    false.
//
// Thread-safety: try_submit(), the counters and cancel_fd() from any thread;
// resize() and shutdown() from the owner's thread (the reactor), one at a
// time.

#include <sched.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>

#include "base/unique_fd.hpp"

namespace framed::exec {

class WorkerPool {
 public:
  using Job = std::function<void()>;

  // No threads yet: resize() starts them. max_queued bounds the jobs waiting
  // for a busy worker (jobs that free workers are about to take do not count).
  explicit WorkerPool(std::size_t max_queued);
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `job`, or returns false at once: queue full, or shut down.
  [[nodiscard]] bool try_submit(Job job);

  // Grows or shrinks the pool to `threads` (at least 1). Growing starts
  // threads now; shrinking lets workers leave as they become idle, so it
  // never waits for a running job. Threads that have left are joined here
  // (they have finished, so that is immediate) or at shutdown. Returns the
  // error if a thread could not be started (the pool keeps those that did).
  [[nodiscard]] std::error_code resize(unsigned threads);
  void set_max_queued(std::size_t max_queued);

  void shutdown() noexcept;

  // Readable once shutdown() has begun; -1 if the eventfd could not be made
  // (jobs then run to their own end). Owned by the pool.
  [[nodiscard]] int cancel_fd() const noexcept { return cancel_fd_.get(); }

  [[nodiscard]] unsigned threads() const;   // the target size
  [[nodiscard]] unsigned busy() const;      // workers running a job
  [[nodiscard]] std::size_t queued() const; // jobs waiting for a worker

 private:
  struct Worker {
    std::thread thread;
    bool finished = false;  // its loop has returned; guarded by mutex_
  };

  void work(Worker& self);
  // With mutex_ held: moves the threads that have finished to `out`.
  void take_finished(std::list<Worker>& out);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  // std::list: each thread keeps a reference to its own Worker.
  std::list<Worker> workers_;
  unsigned target_ = 0;  // threads wanted
  unsigned live_ = 0;    // threads whose loop has not returned
  unsigned busy_ = 0;    // threads running a job
  std::size_t max_queued_;
  bool stopping_ = false;
  base::UniqueFd cancel_fd_;
  // The CPUs the process could use when the pool was made: every worker's.
  cpu_set_t allowed_cpus_{};
  bool allowed_cpus_valid_ = true;
};

// The CPUs this process may run on (its affinity mask), at least 1: what
// `workers = 0` means.
unsigned available_cpus() noexcept;

}  // namespace framed::exec
