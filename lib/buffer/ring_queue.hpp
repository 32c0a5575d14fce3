#pragma once
// A FIFO of small values in one ring of memory that grows (doubling) and is
// never given back: in the steady state pushing and popping allocate
// nothing. std::deque allocates a block each time its end crosses one (every
// 64 uint64_t values), which on the request path is an allocation every few
// dozen replies.

#include <cassert>
#include <cstddef>
#include <utility>
#include <vector>

namespace framed::buffer {

template <typename T>
class RingQueue {
 public:
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  [[nodiscard]] T& front() noexcept {
    assert(size_ != 0);
    return slots_[head_];
  }

  void push_back(T value) {
    if (size_ == slots_.size()) grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(value);
    ++size_;
  }

  void pop_front() noexcept {
    assert(size_ != 0);
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
  }

 private:
  void grow() {
    // Sizes are powers of two, so an index wraps with a mask.
    std::vector<T> larger(slots_.empty() ? 16 : slots_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i) larger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
    slots_ = std::move(larger);
    head_ = 0;
  }

  std::vector<T> slots_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace framed::buffer
