// The buffer budget (limits.max_buffered_total): every byte a ByteBuffer
// allocates is counted while it lives, however it grows, shrinks, moves or
// swaps, and given back when it goes.
#include <catch2/catch.hpp>

#include <utility>

#include "buffer/byte_buffer.hpp"
#include "buffer/memory_budget.hpp"

using framed::buffer::ByteBuffer;
using framed::buffer::MemoryBudget;

TEST_CASE("a buffer counts its memory from account_to until it is destroyed", "[budget]") {
  MemoryBudget budget(1 << 20);
  {
    ByteBuffer buffer(1000);
    CHECK(budget.held() == 0);
    buffer.account_to(&budget);
    CHECK(budget.held() == buffer.capacity());
    buffer.ensure_writable(100'000);
    CHECK(budget.held() == buffer.capacity());
    CHECK(buffer.capacity() > 100'000);
    buffer.shrink_if_idle(1000);
    CHECK(budget.held() == buffer.capacity());
    buffer.account_to(nullptr);
    CHECK(budget.held() == 0);
    buffer.account_to(&budget);
  }
  CHECK(budget.held() == 0);
}

TEST_CASE("moves and swaps carry the accounting with the memory", "[budget]") {
  MemoryBudget first(1 << 20);
  MemoryBudget second(1 << 20);
  ByteBuffer a(1000);
  ByteBuffer b(50'000);
  a.account_to(&first);
  b.account_to(&second);
  const std::size_t a_bytes = a.capacity();
  const std::size_t b_bytes = b.capacity();
  std::swap(a, b);
  CHECK(first.held() == a_bytes);
  CHECK(second.held() == b_bytes);
  {
    ByteBuffer moved(std::move(a));
    CHECK(second.held() == b_bytes);
    b = std::move(moved);  // b's old memory (first's) is freed, moved's taken
    CHECK(first.held() == 0);
    CHECK(second.held() == b_bytes);
  }
  CHECK(second.held() == b_bytes);
}

TEST_CASE("the budget is exhausted at its limit, and a reload may move the limit", "[budget]") {
  MemoryBudget budget(8'000);
  ByteBuffer buffer(4096);
  buffer.account_to(&budget);
  CHECK_FALSE(budget.exhausted());
  CHECK_FALSE(buffer.fits_without_growth(8192));
  buffer.ensure_writable(8192);
  CHECK(budget.exhausted());
  budget.set_limit(1 << 20);
  CHECK_FALSE(budget.exhausted());
}
