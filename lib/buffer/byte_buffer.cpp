#include "buffer/byte_buffer.hpp"

#include <algorithm>
#include <cassert>
#include <new>
#include <utility>

namespace framed::buffer {

ByteBuffer::ByteBuffer(std::size_t initial_capacity) { reallocate(initial_capacity + kTailPadding); }

ByteBuffer::ByteBuffer(ByteBuffer&& other) noexcept
    : data_(std::move(other.data_)),
      capacity_(std::exchange(other.capacity_, 0)),
      read_pos_(std::exchange(other.read_pos_, 0)),
      write_pos_(std::exchange(other.write_pos_, 0)),
      budget_(std::exchange(other.budget_, nullptr)) {}

ByteBuffer& ByteBuffer::operator=(ByteBuffer&& other) noexcept {
  if (this == &other) return *this;
  unaccount();
  data_ = std::move(other.data_);
  capacity_ = std::exchange(other.capacity_, 0);
  read_pos_ = std::exchange(other.read_pos_, 0);
  write_pos_ = std::exchange(other.write_pos_, 0);
  budget_ = std::exchange(other.budget_, nullptr);
  return *this;
}

void ByteBuffer::account_to(MemoryBudget* budget) noexcept {
  unaccount();
  budget_ = budget;
  if (budget_ != nullptr) budget_->add(capacity_);
}

void ByteBuffer::reallocate(std::size_t new_capacity) {
  const std::size_t live = readable_size();
  if (read_pos_ != 0) {
    if (live != 0) std::memmove(data_.get(), read_ptr(), live);
    read_pos_ = 0;
    write_pos_ = live;
  }
  char* memory = nullptr;
  if (new_capacity > capacity_ || live != 0) {
    // Growing keeps the bytes: realloc moves a large block's pages rather
    // than copying them. Not zero-filled: recv() overwrites it a moment later.
    memory = static_cast<char*>(std::realloc(data_.get(), new_capacity));
    if (memory == nullptr) throw std::bad_alloc();
    (void)data_.release();
  } else {
    // Shrinking an empty buffer: a fresh small block, so a large one's
    // mapping goes back to the system whole.
    memory = static_cast<char*>(std::malloc(new_capacity));
    if (memory == nullptr) throw std::bad_alloc();
  }
  data_.reset(memory);
  if (budget_ != nullptr) {
    budget_->add(new_capacity);
    budget_->remove(capacity_);
  }
  capacity_ = new_capacity;
}

void ByteBuffer::ensure_writable(std::size_t n) {
  if (writable_size() >= n) return;
  const std::size_t live = readable_size();
  // Compact when the consumed prefix alone makes room: cheaper than growing.
  if (capacity_ - kTailPadding - live >= n) {
    if (live != 0) std::memmove(data_.get(), read_ptr(), live);
    read_pos_ = 0;
    write_pos_ = live;
    return;
  }
  const std::size_t needed = live + n + kTailPadding;
  reallocate(std::max(needed, capacity_ * 2));
}

void ByteBuffer::consume(std::size_t n) noexcept {
  assert(n <= readable_size());
  read_pos_ += n;
  // Rewinding when empty keeps the common request/reply cycle at the front of
  // the buffer, so it never needs a memmove.
  if (read_pos_ == write_pos_) read_pos_ = write_pos_ = 0;
}

void ByteBuffer::shrink_if_idle(std::size_t keep_capacity) {
  if (empty() && capacity_ > keep_capacity + kTailPadding) reallocate(keep_capacity + kTailPadding);
}

}  // namespace framed::buffer
