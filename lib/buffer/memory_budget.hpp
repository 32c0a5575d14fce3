#pragma once
// The daemon-wide budget for buffered request and reply bytes
// (limits.max_buffered_total): every connection's buffers are accounted to
// it as they are allocated and freed, so the total is exact at any moment,
// not a sample. Past the limit, connections stop growing their buffers:
// whoever needs more memory to go on stops reading until the total falls
// (the shard's sweep closes the largest of them if it does not).
//
// Atomic (relaxed) so that reactors on several threads can share one
// budget; each update is one uncontended add on the one-reactor path, and
// it runs only when a buffer is allocated or freed, never per byte.

#include <atomic>
#include <cstddef>

namespace framed::buffer {

class MemoryBudget {
 public:
  explicit MemoryBudget(std::size_t limit) noexcept : limit_(limit) {}

  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  void add(std::size_t bytes) noexcept { held_.fetch_add(bytes, std::memory_order_relaxed); }
  void remove(std::size_t bytes) noexcept { held_.fetch_sub(bytes, std::memory_order_relaxed); }

  // A reload may change the limit; what is held stays.
  void set_limit(std::size_t limit) noexcept { limit_.store(limit, std::memory_order_relaxed); }

  [[nodiscard]] std::size_t held() const noexcept { return held_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
  [[nodiscard]] bool exhausted() const noexcept { return held() >= limit(); }

 private:
  std::atomic<std::size_t> held_{0};
  std::atomic<std::size_t> limit_;
};

}  // namespace framed::buffer
