// The hot path allocates nothing: once a connection has served a few
// requests, pipelined pings and 1 KiB echoes go through transport, decoder,
// dispatcher, command, encoder and back without one heap allocation on the
// reactor thread.
//
// This binary replaces the global operator new with a counting one (counted
// only on the test's own thread, which runs the reactor, and only while a
// window is open). ByteBuffer takes its memory from malloc, which operator
// new does not see; every connection buffer is counted in the memory
// budget, so an unchanged budget over the window says no buffer grew or
// shrank either. Not built with sanitizers, which bring their own
// allocator.

#include <atomic>
#include <cstdlib>
#include <new>

#include "pipeline_fixture.hpp"

namespace {

std::atomic<bool> counting{false};
std::atomic<std::uint64_t> allocations{0};
thread_local bool reactor_thread = false;

void* counted_allocation(std::size_t size) {
  if (reactor_thread && counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    // FRAMED_TRAP_ALLOCATION=1 under a debugger shows who allocated.
    static const bool trap = std::getenv("FRAMED_TRAP_ALLOCATION") != nullptr;
    if (trap) __builtin_trap();
  }
  void* memory = std::malloc(size == 0 ? 1 : size);
  if (memory == nullptr) throw std::bad_alloc();
  return memory;
}

// Opens a counting window for the scope's lifetime.
class CountingWindow {
 public:
  CountingWindow() {
    allocations = 0;
    counting = true;
  }
  ~CountingWindow() { counting = false; }
  CountingWindow(const CountingWindow&) = delete;
  CountingWindow& operator=(const CountingWindow&) = delete;
};

std::string ping(std::uint64_t id) { return json_frame(R"({"cmd":"ping","id":)" + std::to_string(id) + "}"); }
std::string pong(std::uint64_t id) { return json_frame(R"({"id":)" + std::to_string(id) + R"(,"ok":true,"pong":true})"); }
std::string echo(std::uint64_t id, const std::string& body) {
  return json_frame(R"({"cmd":"echo","id":)" + std::to_string(id) + R"(,"total_size":)" + std::to_string(body.size()) +
                        "}",
                    body);
}
std::string echoed(std::uint64_t id, const std::string& body) {
  return json_frame(R"({"id":)" + std::to_string(id) + R"(,"ok":true,"total_size":)" + std::to_string(body.size()) + "}",
                    body);
}

// Requests and the replies they must bring, built before any window opens.
struct Workload {
  std::string requests;
  std::string replies;
  std::vector<std::size_t> batch_request_ends;  // requests' offset after each batch
  std::vector<std::size_t> batch_reply_ends;    // replies' offset after each batch
};

Workload pipelined(std::uint64_t first_id, std::size_t batches, std::size_t per_batch, const std::string* body) {
  Workload load;
  std::uint64_t id = first_id;
  for (std::size_t batch = 0; batch < batches; ++batch) {
    for (std::size_t i = 0; i < per_batch; ++i, ++id) {
      load.requests += body == nullptr ? ping(id) : echo(id, *body);
      load.replies += body == nullptr ? pong(id) : echoed(id, *body);
    }
    load.batch_request_ends.push_back(load.requests.size());
    load.batch_reply_ends.push_back(load.replies.size());
  }
  return load;
}

// Runs `load` with one batch in flight at a time; the counting window covers
// only the run, not the building of the workload or the checks.
std::uint64_t allocations_running(Fixture& fixture, const Workload& load) {
  fixture.to_send = load.requests;
  fixture.sent = 0;
  fixture.received.clear();
  fixture.received.reserve(load.replies.size() + 65536);
  bool completed = true;
  {
    const CountingWindow window;
    for (std::size_t batch = 0; batch < load.batch_request_ends.size() && completed; ++batch) {
      fixture.send_limit = load.batch_request_ends[batch];
      const std::size_t reply_end = load.batch_reply_ends[batch];
      completed = fixture.run([&] { return fixture.received.size() >= reply_end; });
    }
  }
  const std::uint64_t counted = allocations;
  REQUIRE(completed);
  CHECK(fixture.received == load.replies);
  return counted;
}

}  // namespace

void* operator new(std::size_t size) { return counted_allocation(size); }
void* operator new[](std::size_t size) { return counted_allocation(size); }
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { std::free(memory); }

TEST_CASE("allocation: pipelined pings and 1 KiB echoes allocate nothing once warm", "[allocation]") {
  reactor_thread = true;
  Fixture fixture;
  const std::string body(1024, 'x');
  // Warm: the first requests size the connection's buffers, its reply
  // queue, the reactor's completion lists and the parser's memory (simdjson
  // keeps room for the longest header it has parsed: warm with ids as long
  // as any measured below).
  (void)allocations_running(fixture, pipelined(9000000, 8, 16, nullptr));
  (void)allocations_running(fixture, pipelined(9100000, 8, 16, &body));

  const std::size_t budget_before = fixture.budget.held();
  CHECK(allocations_running(fixture, pipelined(1000000, 256, 16, nullptr)) == 0);
  CHECK(allocations_running(fixture, pipelined(2000000, 64, 16, &body)) == 0);
  CHECK(allocations_running(fixture, pipelined(3000000, 256, 1, nullptr)) == 0);
  CHECK(allocations_running(fixture, pipelined(4000000, 64, 1, &body)) == 0);
  CHECK(fixture.budget.held() == budget_before);
  reactor_thread = false;
}
