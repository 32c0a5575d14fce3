#pragma once
// A contiguous byte buffer with a read cursor and a write cursor, in the
// spirit of muduo's Buffer:
//
//   [ consumed | readable: read_pos_..write_pos_ | writable | tail padding ]
//
// Invariant: at least kTailPadding bytes of allocated memory follow the write
// cursor. simdjson reads up to that many bytes past the end of its input, so a
// JSON header can be parsed in place, with no copy, wherever it sits.
//
// Memory comes from malloc and grows with realloc: a large buffer is its own
// mapping, which glibc grows by remapping its pages, so a body growing to
// 32 MiB is never copied from one block to the next (a copy that would be
// one long, unbounded step on the reactor thread).
//
// Not thread-safe: owned by one connection on the reactor thread.

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

#include "buffer/memory_budget.hpp"

namespace framed::buffer {

class ByteBuffer {
 public:
  // simdjson::SIMDJSON_PADDING is 64; asserted where simdjson is used.
  static constexpr std::size_t kTailPadding = 64;

  explicit ByteBuffer(std::size_t initial_capacity = 4096);

  // Moves carry the accounting with the memory: the moved-from buffer
  // holds nothing and counts nothing.
  ByteBuffer(ByteBuffer&& other) noexcept;
  ByteBuffer& operator=(ByteBuffer&& other) noexcept;
  ~ByteBuffer() { unaccount(); }

  // Counts this buffer's memory, now and as it grows or shrinks, in
  // `budget` (null: in none), which must outlive the buffer.
  void account_to(MemoryBudget* budget) noexcept;

  [[nodiscard]] std::size_t readable_size() const noexcept { return write_pos_ - read_pos_; }
  [[nodiscard]] bool empty() const noexcept { return read_pos_ == write_pos_; }
  [[nodiscard]] const char* read_ptr() const noexcept { return data_.get() + read_pos_; }
  [[nodiscard]] std::string_view readable() const noexcept { return {read_ptr(), readable_size()}; }

  // Space that may be written now, not counting the padding.
  [[nodiscard]] std::size_t writable_size() const noexcept {
    return capacity_ - kTailPadding - write_pos_;
  }
  [[nodiscard]] char* write_ptr() noexcept { return data_.get() + write_pos_; }

  // Makes at least n bytes writable: first by moving the readable bytes to the
  // front, then by growing (at least doubling, so appends stay amortised O(1)).
  void ensure_writable(std::size_t n);
  // Whether ensure_writable(n) would need no new memory (a compaction at
  // most).
  [[nodiscard]] bool fits_without_growth(std::size_t n) const noexcept {
    return capacity_ - kTailPadding - readable_size() >= n;
  }

  // Marks n bytes after the write cursor as written (n <= writable_size()).
  void commit(std::size_t n) noexcept { write_pos_ += n; }
  // Drops n readable bytes (n <= readable_size()).
  void consume(std::size_t n) noexcept;
  void clear() noexcept { read_pos_ = write_pos_ = 0; }

  void append(std::string_view bytes) {
    ensure_writable(bytes.size());
    if (!bytes.empty()) std::memcpy(write_ptr(), bytes.data(), bytes.size());
    commit(bytes.size());
  }
  void append(char c) {
    ensure_writable(1);
    *write_ptr() = c;
    commit(1);
  }

  // Bytes allocated, for memory accounting in stats and tests.
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  // The budget this buffer's memory is counted in (null: none).
  [[nodiscard]] MemoryBudget* budget() const noexcept { return budget_; }

  // Gives memory back when a large frame has passed and the buffer is empty,
  // so one 64 MiB body does not pin 64 MiB for the connection's lifetime.
  void shrink_if_idle(std::size_t keep_capacity);

 private:
  struct FreeMemory {
    void operator()(char* memory) const noexcept { std::free(memory); }
  };

  void reallocate(std::size_t new_capacity);
  void unaccount() noexcept {
    if (budget_ != nullptr) budget_->remove(capacity_);
  }

  std::unique_ptr<char, FreeMemory> data_;
  std::size_t capacity_ = 0;
  std::size_t read_pos_ = 0;
  std::size_t write_pos_ = 0;
  MemoryBudget* budget_ = nullptr;
};

}  // namespace framed::buffer
