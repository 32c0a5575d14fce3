// Tests for lib/exec/worker_pool: bounded queue, resize, shutdown. Also run
// under ThreadSanitizer (meson test --suite exec in a -Db_sanitize=thread
// build), so the tests hammer the pool from several threads on purpose.

#include "exec/worker_pool.hpp"

#include <poll.h>

#include <atomic>
#include <new>
#include <stdexcept>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using framed::exec::WorkerPool;
using namespace std::chrono_literals;

namespace {

// A gate that jobs wait at until the test opens it.
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  // Waits until `count` jobs are at the gate (or 10 s, to fail rather than hang).
  bool wait_for_waiters(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 10s, [&] { return waiting_ >= count; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int waiting_ = 0;
  bool open_ = false;
};

template <typename Predicate>
bool eventually(Predicate predicate) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("worker pool runs every job it accepts", "[exec][worker_pool]") {
  WorkerPool pool(10000);
  REQUIRE_FALSE(pool.resize(4));
  std::atomic<int> done{0};
  for (int i = 0; i < 2000; ++i) REQUIRE(pool.try_submit([&done] { done.fetch_add(1); }));
  REQUIRE(eventually([&] { return done.load() == 2000; }));
  CHECK(pool.threads() == 4);
}

TEST_CASE("worker pool: a job that throws costs that job, not the worker", "[exec][worker_pool]") {
  WorkerPool pool(100);
  REQUIRE_FALSE(pool.resize(1));
  std::atomic<int> done{0};
  REQUIRE(pool.try_submit([] { throw std::runtime_error("a job's own failure"); }));
  REQUIRE(pool.try_submit([] { throw std::bad_alloc(); }));
  for (int i = 0; i < 10; ++i) REQUIRE(pool.try_submit([&done] { done.fetch_add(1); }));
  REQUIRE(eventually([&] { return done.load() == 10; }));
  CHECK(pool.threads() == 1);
  CHECK(eventually([&] { return pool.busy() == 0; }));
}

TEST_CASE("worker pool: a full queue refuses at once", "[exec][worker_pool]") {
  WorkerPool pool(2);
  REQUIRE_FALSE(pool.resize(1));
  Gate gate;
  std::atomic<int> done{0};
  const auto job = [&] {
    gate.wait();
    done.fetch_add(1);
  };
  REQUIRE(pool.try_submit(job));  // the idle worker takes it
  REQUIRE(gate.wait_for_waiters(1));
  CHECK(pool.busy() == 1);
  CHECK(pool.try_submit(job));  // queued: 1
  CHECK(pool.try_submit(job));  // queued: 2 = max_queued
  const auto before = std::chrono::steady_clock::now();
  CHECK_FALSE(pool.try_submit(job));  // full
  CHECK(std::chrono::steady_clock::now() - before < 100ms);
  CHECK(pool.queued() == 2);
  gate.open();
  REQUIRE(eventually([&] { return done.load() == 3; }));
  // Room again.
  CHECK(pool.try_submit(job));
  REQUIRE(eventually([&] { return done.load() == 4; }));
}

TEST_CASE("worker pool: max_queued 0 accepts only what idle workers take", "[exec][worker_pool]") {
  WorkerPool pool(0);
  REQUIRE_FALSE(pool.resize(2));
  REQUIRE(eventually([&] { return pool.busy() == 0; }));
  Gate gate;
  std::atomic<int> done{0};
  const auto job = [&] {
    gate.wait();
    done.fetch_add(1);
  };
  // Two idle workers: two jobs in, then no more.
  REQUIRE(eventually([&] { return pool.try_submit(job); }));
  REQUIRE(gate.wait_for_waiters(1));
  REQUIRE(eventually([&] { return pool.try_submit(job); }));
  REQUIRE(gate.wait_for_waiters(2));
  CHECK_FALSE(pool.try_submit(job));
  gate.open();
  REQUIRE(eventually([&] { return done.load() == 2; }));
}

TEST_CASE("worker pool grows and shrinks without waiting for running jobs", "[exec][worker_pool]") {
  WorkerPool pool(100);
  REQUIRE_FALSE(pool.resize(1));
  REQUIRE_FALSE(pool.resize(4));
  CHECK(pool.threads() == 4);

  // Four jobs at once prove four threads.
  Gate gate;
  std::atomic<int> done{0};
  for (int i = 0; i < 4; ++i) {
    REQUIRE(pool.try_submit([&] {
      gate.wait();
      done.fetch_add(1);
    }));
  }
  REQUIRE(gate.wait_for_waiters(4));
  CHECK(pool.busy() == 4);

  // Shrinking while all four are busy returns at once.
  const auto before = std::chrono::steady_clock::now();
  REQUIRE_FALSE(pool.resize(1));
  CHECK(std::chrono::steady_clock::now() - before < 1s);
  CHECK(pool.threads() == 1);
  gate.open();
  REQUIRE(eventually([&] { return done.load() == 4; }));

  // The one that is left still works, one job at a time.
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::atomic<int> finished{0};
  for (int i = 0; i < 20; ++i) {
    REQUIRE(pool.try_submit([&] {
      const int now = running.fetch_add(1) + 1;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(1ms);
      running.fetch_sub(1);
      finished.fetch_add(1);
    }));
  }
  REQUIRE(eventually([&] { return finished.load() == 20; }));
  CHECK(most.load() == 1);

  // And it grows again.
  REQUIRE_FALSE(pool.resize(3));
  Gate second;
  for (int i = 0; i < 3; ++i) REQUIRE(pool.try_submit([&] { second.wait(); }));
  REQUIRE(second.wait_for_waiters(3));
  second.open();
}

TEST_CASE("worker pool shutdown drops queued jobs, signals cancel_fd, joins", "[exec][worker_pool]") {
  Gate gate;
  std::atomic<int> ran{0};
  std::atomic<bool> cancelled_seen{false};
  {
    WorkerPool pool(10);
    REQUIRE_FALSE(pool.resize(1));
    REQUIRE(pool.cancel_fd() >= 0);
    const int cancel_fd = pool.cancel_fd();
    // The running job waits for cancellation, as run_child does.
    REQUIRE(pool.try_submit([&, cancel_fd] {
      ran.fetch_add(1);
      pollfd fd{cancel_fd, POLLIN, 0};
      cancelled_seen = ::poll(&fd, 1, 10000) == 1;
    }));
    REQUIRE(eventually([&] { return pool.busy() == 1; }));
    for (int i = 0; i < 5; ++i) REQUIRE(pool.try_submit([&] { ran.fetch_add(1); }));
    pool.shutdown();
    CHECK_FALSE(pool.try_submit([&] { ran.fetch_add(1); }));
    CHECK_FALSE(pool.resize(2) == std::error_code());
  }
  CHECK(ran.load() == 1);
  CHECK(cancelled_seen.load());
}

TEST_CASE("worker pool with no thread refuses everything", "[exec][worker_pool]") {
  WorkerPool pool(10);
  CHECK_FALSE(pool.try_submit([] {}));
}

TEST_CASE("worker pool: many submitters, resizes and a shutdown race cleanly", "[exec][worker_pool]") {
  std::atomic<int> accepted{0};
  std::atomic<int> executed{0};
  {
    WorkerPool pool(64);
    REQUIRE_FALSE(pool.resize(3));
    std::vector<std::thread> submitters;
    for (int t = 0; t < 4; ++t) {
      submitters.emplace_back([&] {
        for (int i = 0; i < 2000; ++i) {
          if (pool.try_submit([&] { executed.fetch_add(1); })) accepted.fetch_add(1);
          if (i % 64 == 0) std::this_thread::yield();
        }
      });
    }
    // The owner resizes meanwhile, as a reload would.
    for (unsigned size : {1U, 5U, 2U, 8U, 1U, 4U}) {
      REQUIRE_FALSE(pool.resize(size));
      std::this_thread::sleep_for(2ms);
    }
    for (auto& thread : submitters) thread.join();
    REQUIRE(eventually([&] { return executed.load() == accepted.load(); }));
    REQUIRE(pool.queued() == 0);
  }
  CHECK(accepted.load() > 0);
  CHECK(executed.load() == accepted.load());
}

TEST_CASE("available_cpus is at least one", "[exec][worker_pool]") { CHECK(framed::exec::available_cpus() >= 1); }
