// The table of kept partial uploads (daemon/commands/partial_uploads.hpp):
// one per name, the oldest evicted past max_partials, expired past
// resume_window, claimed only by a matching offset, discarded by a put
// without one. Pure bookkeeping: the descriptors here are /dev/null's.

#include <catch2/catch.hpp>
#include <fcntl.h>

#include "commands/partial_uploads.hpp"

namespace {

using framed::commands::PartialPolicy;
using framed::commands::PartialUpload;
using framed::commands::PartialUploads;
using namespace std::chrono_literals;

PartialUpload partial(const std::string& name, std::uint64_t size, const std::string& root = "/srv") {
  PartialUpload upload;
  upload.root = root;
  upload.name = name;
  upload.size = size;
  upload.file.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return upload;
}

std::vector<std::string> names(PartialUploads& table, framed::base::TimePoint now, const PartialPolicy& policy,
                               std::string_view prefix = "") {
  PartialUploads::Released released;
  std::vector<std::string> out;
  for (const auto& listed : table.list("/srv", prefix, policy, now, released)) out.push_back(listed.name);
  return out;
}

const framed::base::TimePoint kStart = framed::base::Clock::now();

}  // namespace

TEST_CASE("partial uploads: one per name, the oldest evicted", "[files]") {
  PartialUploads table;
  const PartialPolicy policy{10min, 2};
  CHECK(table.park(partial("a", 1), policy, kStart).empty());
  CHECK(table.park(partial("b", 2), policy, kStart + 1s).empty());
  // A newer cut of "a" replaces the older one (and is now the newest).
  auto released = table.park(partial("a", 3), policy, kStart + 2s);
  REQUIRE(released.size() == 1);
  CHECK(released[0].size == 1);
  released = table.park(partial("c", 4), policy, kStart + 3s);
  REQUIRE(released.size() == 1);
  CHECK(released[0].name == "b");
  CHECK(names(table, kStart + 4s, policy) == std::vector<std::string>{"a", "c"});
  CHECK(names(table, kStart + 4s, policy, "c") == std::vector<std::string>{"c"});
  const auto counters = table.counters();
  CHECK(counters.kept == 4);
  CHECK(counters.evicted == 1);
  CHECK(counters.discarded == 1);
  CHECK(counters.held == 2);
}

TEST_CASE("partial uploads: claimed by a matching offset only", "[files]") {
  PartialUploads table;
  const PartialPolicy policy{10min, 16};
  (void)table.park(partial("f", 100), policy, kStart);
  auto claim = table.claim("/srv", "f", 99, policy, kStart);
  CHECK_FALSE(claim.upload.has_value());
  CHECK(claim.kept_size == 100U);
  // Another root (a reload moved it) does not see it.
  claim = table.claim("/elsewhere", "f", 100, policy, kStart);
  CHECK_FALSE(claim.upload.has_value());
  CHECK_FALSE(claim.kept_size.has_value());
  claim = table.claim("/srv", "f", 100, policy, kStart);
  REQUIRE(claim.upload.has_value());
  CHECK(claim.upload->size == 100);
  CHECK(claim.upload->file);
  // Taken out: a second claim finds nothing.
  CHECK_FALSE(table.claim("/srv", "f", 100, policy, kStart).upload.has_value());
  CHECK(table.counters().resumed == 1);
}

TEST_CASE("partial uploads: a put without offset discards, expiry sweeps", "[files]") {
  PartialUploads table;
  const PartialPolicy policy{1s, 16};
  (void)table.park(partial("x", 5), policy, kStart);
  (void)table.park(partial("y", 6), policy, kStart + 500ms);
  auto claim = table.claim("/srv", "x", std::nullopt, policy, kStart + 600ms);
  CHECK(claim.released.size() == 1);
  CHECK_FALSE(claim.upload.has_value());
  CHECK(names(table, kStart + 1400ms, policy) == std::vector<std::string>{"y"});
  CHECK(names(table, kStart + 1500ms, policy).empty());
  CHECK(table.counters().expired == 1);
  CHECK(table.counters().discarded == 1);
}

TEST_CASE("partial uploads: next_expiry is the oldest's deadline, expire releases it then", "[files]") {
  PartialUploads table;
  const PartialPolicy policy{1s, 16};
  CHECK_FALSE(table.next_expiry(policy).has_value());
  (void)table.park(partial("old", 5), policy, kStart);
  (void)table.park(partial("new", 6), policy, kStart + 300ms);
  REQUIRE(table.next_expiry(policy) == kStart + 1s);
  CHECK(table.expire(policy, kStart + 999ms).empty());
  const auto released = table.expire(policy, kStart + 1s);  // at its deadline exactly: a timer's time
  REQUIRE(released.size() == 1);
  CHECK(released.front().name == "old");
  CHECK(table.next_expiry(policy) == kStart + 1300ms);
  CHECK(table.counters().expired == 1);
  CHECK(table.counters().held == 1);
  CHECK(table.expire(policy, kStart + 1300ms).size() == 1);
  CHECK_FALSE(table.next_expiry(policy).has_value());
  CHECK(table.counters().held == 0);
}

TEST_CASE("partial uploads: a policy that keeps none hands the upload back", "[files]") {
  PartialUploads table;
  for (const PartialPolicy policy : {PartialPolicy{0s, 16}, PartialPolicy{10min, 0}}) {
    auto released = table.park(partial("n", 1), policy, kStart);
    CHECK(released.size() == 1);
    CHECK(table.counters().held == 0);
  }
  CHECK(table.counters().kept == 0);
}
