#pragma once
// fanout-bench's engine: subscriber threads, each running its own epoll loop
// over its share of the subscriber connections, and one publisher thread.
// They share only the atomics in FanoutShared and read-only inputs; each
// fills its own result, read by the main thread after join().
//
// Run order: every subscriber connects and has its subscription confirmed
// (`ready` counts them); then the main thread sets `start`, the publisher
// publishes until the window ends, waits for its last replies and stores
// how many messages it published; the subscribers finish once each has
// received exactly that many, in order.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "client.hpp"
#include "options.hpp"

namespace framed::bench {

struct FanoutOptions : ServerOptions {
  unsigned subscribers = 1;
  unsigned threads = 1;     // subscriber threads; the publisher has its own
  unsigned pipeline = 16;   // publishes in flight
  std::uint32_t size = 64;  // message payload bytes
  std::string channel = "fanout";
  double duration_s = 5.0;
  double warmup_s = 1.0;
  double setup_timeout_s = 60.0;  // connecting and subscribing everyone
  int server_pid = 0;             // > 0: its CPU time over the window is reported
};

// A message's payload starts with its sequence number, 16 hex digits, so
// every subscriber can check order and gaps; the rest is the same filler
// in every message.
inline constexpr std::size_t kSequenceDigits = 16;

struct FanoutShared {
  std::atomic<unsigned> ready{0};            // subscriptions confirmed
  std::atomic<unsigned> setup_failures{0};   // subscribers that will never be ready
  std::atomic<Clock::rep> start{0};          // publishing begins; 0 until set
  std::atomic<std::int64_t> published{-1};   // final count, once the publisher has drained
  std::atomic<bool> stop{false};             // interrupted or aborted: leave now
};

struct FanoutTimes {
  std::chrono::duration<double> warmup;
  std::chrono::duration<double> duration;
  std::chrono::duration<double> drain;  // after the window, for the last messages
  std::chrono::duration<double> setup;
};

struct SubscriberResult {
  std::uint64_t errors = 0;
  std::uint64_t connected = 0;
  std::uint64_t in_window = 0;           // messages received in the window, all connections
  std::uint64_t min_in_window = UINT64_MAX;
  std::uint64_t max_in_window = 0;
  std::uint64_t min_received = UINT64_MAX;  // whole run, per connection
  std::uint64_t max_received = 0;
  std::vector<char> event_frame;  // the first event as it arrived (sequence 0)
  std::vector<std::string> error_samples;
};

struct PublisherResult {
  std::uint64_t errors = 0;
  std::uint64_t published = 0;  // replied to, whole run
  std::uint64_t in_window = 0;  // replies received in the window
  std::vector<std::string> error_samples;
};

struct SubscriberConfig {
  const FanoutOptions* options = nullptr;
  const Target* target = nullptr;
  FanoutTimes times;
  std::vector<unsigned> connection_ids;
  FanoutShared* shared = nullptr;
};

struct PublisherConfig {
  const FanoutOptions* options = nullptr;
  const Target* target = nullptr;
  FanoutTimes times;
  FanoutShared* shared = nullptr;
};

// The payload of message `sequence`.
std::vector<char> make_payload(std::size_t size, std::uint64_t sequence);

// Never throw: failures land in the result's errors.
void run_subscriber_thread(const SubscriberConfig& config, SubscriberResult& result) noexcept;
void run_publisher_thread(const PublisherConfig& config, PublisherResult& result) noexcept;

}  // namespace framed::bench
