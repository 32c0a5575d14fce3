// The loop itself: work posted from other threads, timers. These ride on the
// backend too (the wake-up is a read() on an eventfd, the timers are the
// poll timeout), so they run once per backend like the I/O tests.

#include <atomic>
#include <thread>
#include <vector>

#include "reactor_test_support.hpp"

namespace framed::reactor::testing {

TEST_CASE("post from another thread wakes a blocked poll and runs on the reactor thread", "[reactor][post]") {
  auto reactor = make_reactor();
  const std::thread::id reactor_thread = std::this_thread::get_id();
  std::thread::id ran_on;
  bool ran = false;
  bool hit_safety_limit = false;
  // The only timer: without the wake-up, poll would sleep until it fires.
  const TimerId safety = reactor->add_timer(base::Clock::now() + kSafetyLimit, [&] {
    hit_safety_limit = true;
    reactor->stop();
  });

  std::atomic<bool> loop_started{false};
  reactor->post([&] { loop_started = true; });
  std::thread poster([&] {
    while (!loop_started) std::this_thread::yield();
    // Give the loop time to go back to sleep in poll(); if it has not yet,
    // the test still checks that the work runs, just less strictly.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    reactor->post([&] {
      ran_on = std::this_thread::get_id();
      ran = true;
      reactor->stop();
    });
  });
  reactor->run();
  poster.join();
  reactor->cancel_timer(safety);

  CHECK_FALSE(hit_safety_limit);
  REQUIRE(ran);
  CHECK(ran_on == reactor_thread);
}

TEST_CASE("work posted from many threads all runs, in order per thread", "[reactor][post]") {
  constexpr int kThreads = 4;
  constexpr int kPostsPerThread = 500;
  auto reactor = make_reactor();
  std::vector<std::vector<int>> seen(kThreads);
  int total = 0;

  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPostsPerThread; ++i) {
        reactor->post([&, t, i] {
          seen[static_cast<std::size_t>(t)].push_back(i);
          ++total;
        });
      }
    });
  }
  const bool done = run_until(*reactor, [&] { return total == kThreads * kPostsPerThread; });
  for (std::thread& poster : posters) poster.join();
  REQUIRE(done);
  for (const std::vector<int>& order : seen) {
    REQUIRE(order.size() == static_cast<std::size_t>(kPostsPerThread));
    for (int i = 0; i < kPostsPerThread; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);
  }
}

TEST_CASE("stop_from_any_thread ends run()", "[reactor][post]") {
  auto reactor = make_reactor();
  bool hit_safety_limit = false;
  const TimerId safety = reactor->add_timer(base::Clock::now() + kSafetyLimit, [&] {
    hit_safety_limit = true;
    reactor->stop();
  });
  std::thread stopper([&] { reactor->stop_from_any_thread(); });
  reactor->run();
  stopper.join();
  reactor->cancel_timer(safety);
  CHECK_FALSE(hit_safety_limit);
}

TEST_CASE("timers fire in deadline order and cancelled ones never fire", "[reactor][timer]") {
  using std::chrono::milliseconds;
  auto reactor = make_reactor();
  std::vector<int> fired;
  const base::TimePoint start = base::Clock::now();
  // Added out of order; deadlines far enough apart that the order is the
  // deadlines' and not the insertion's.
  reactor->add_timer(start + milliseconds(30), [&] { fired.push_back(30); });
  reactor->add_timer(start + milliseconds(10), [&] { fired.push_back(10); });
  const TimerId cancelled = reactor->add_timer(start + milliseconds(20), [&] { fired.push_back(20); });
  reactor->add_timer(start + milliseconds(40), [&] { fired.push_back(40); });
  reactor->add_timer(start - milliseconds(5), [&] { fired.push_back(0); });  // already due
  const TimerId cancelled_late = reactor->add_timer(start + milliseconds(50), [&] { fired.push_back(50); });
  reactor->add_timer(start + milliseconds(60), [&] {
    fired.push_back(60);
    reactor->stop();
  });
  reactor->cancel_timer(cancelled);
  // A timer may cancel another from inside the loop.
  reactor->add_timer(start + milliseconds(45), [&] {
    fired.push_back(45);
    reactor->cancel_timer(cancelled_late);
  });
  reactor->add_timer(start + kSafetyLimit, [&] { reactor->stop(); });

  reactor->run();
  CHECK(fired == std::vector<int>{0, 10, 30, 40, 45, 60});
  // Nothing fires before its deadline.
  CHECK(base::Clock::now() - start >= milliseconds(60));
}

}  // namespace framed::reactor::testing
