// Principals at run time: the token bucket behind `rate`, the credential
// index, a session's life across reloads, and the per-address counts behind
// max_connections_per_ip.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "auth/address_counts.hpp"
#include "auth/client_session.hpp"
#include "auth/permissions.hpp"
#include "auth/principal_table.hpp"
#include "auth/rate_buckets.hpp"
#include "auth/token_bucket.hpp"
#include "digest/sha256.hpp"

using framed::auth::AddressCounts;
using framed::auth::AddressSlot;
using framed::auth::ClientSession;
using framed::auth::Credential;
using framed::auth::PrincipalTable;
using framed::auth::RateBuckets;
using framed::auth::TokenBucket;
using framed::config::Principal;
using namespace std::chrono_literals;

namespace {

const framed::base::TimePoint kStart = framed::base::TimePoint{} + 1000h;

std::string sha256(std::string_view text) {
  framed::digest::Sha256 hash;
  hash.update(text);
  return hash.hex_digest();
}

Principal with_token(const std::string& name, std::string_view token) {
  Principal principal;
  principal.name = name;
  principal.token_sha256 = sha256(token);
  return principal;
}

std::shared_ptr<const PrincipalTable> table_of(std::map<std::string, Principal> principals, std::uint64_t generation) {
  return std::make_shared<const PrincipalTable>(principals, generation);
}

sockaddr_storage inet4(const char* text) {
  sockaddr_storage storage{};
  auto& in = reinterpret_cast<sockaddr_in&>(storage);
  in.sin_family = AF_INET;
  REQUIRE(::inet_pton(AF_INET, text, &in.sin_addr) == 1);
  return storage;
}

sockaddr_storage inet6(const char* text) {
  sockaddr_storage storage{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
  in6.sin6_family = AF_INET6;
  REQUIRE(::inet_pton(AF_INET6, text, &in6.sin6_addr) == 1);
  return storage;
}

}  // namespace

TEST_CASE("token bucket: a second's worth of burst, then the rate", "[auth]") {
  TokenBucket bucket(10);
  int taken = 0;
  for (int i = 0; i < 100; ++i) taken += bucket.take(kStart) ? 1 : 0;
  CHECK(taken == 10);
  CHECK_FALSE(bucket.take(kStart + 99ms));  // 0.99 of a token
  CHECK(bucket.take(kStart + 100ms));
  CHECK_FALSE(bucket.take(kStart + 100ms));
  // Idle for a day: full, never more than full.
  taken = 0;
  for (int i = 0; i < 100; ++i) taken += bucket.take(kStart + 24h) ? 1 : 0;
  CHECK(taken == 10);
}

TEST_CASE("token bucket: a rate of one a second, and a clock that does not move", "[auth]") {
  TokenBucket bucket(1);
  CHECK(bucket.take(kStart));
  CHECK_FALSE(bucket.take(kStart));
  CHECK_FALSE(bucket.take(kStart + 999ms));
  CHECK(bucket.take(kStart + 1s));
  // Time running backwards (it cannot, on a steady clock) earns nothing.
  CHECK_FALSE(bucket.take(kStart));
}

TEST_CASE("token bucket: a new rate keeps what is held, capped", "[auth]") {
  TokenBucket bucket(100);
  for (int i = 0; i < 50; ++i) REQUIRE(bucket.take(kStart));
  bucket.set_rate(10);  // held 50, capped at 10
  int taken = 0;
  for (int i = 0; i < 100; ++i) taken += bucket.take(kStart) ? 1 : 0;
  CHECK(taken == 10);
  CHECK(bucket.rate() == 10);
}

TEST_CASE("principal table: each credential finds its principal", "[auth]") {
  Principal deploy = with_token("deploy", "t0ken");
  Principal ops;
  ops.name = "ops";
  ops.unix_uids = {1000, 1001};
  Principal robot;
  robot.name = "robot";
  robot.certificate_subject = "robot.example.internal";
  const auto table = table_of({{"deploy", deploy}, {"ops", ops}, {"robot", robot}}, 4);

  CHECK(table->generation() == 4);
  REQUIRE(table->by_token("t0ken") != nullptr);
  CHECK(table->by_token("t0ken")->name == "deploy");
  CHECK(table->by_token("t0ke") == nullptr);
  CHECK(table->by_token("") == nullptr);
  CHECK(table->by_token_hash(sha256("t0ken"))->name == "deploy");
  CHECK(table->by_uid(1001)->name == "ops");
  CHECK(table->by_uid(0) == nullptr);
  const std::string sans[] = {"other.example", "robot.example.internal"};
  CHECK(table->by_certificate("CN=robot", sans)->name == "robot");
  CHECK(table->by_certificate("CN=robot", std::span<const std::string>(sans, 1)) == nullptr);
  CHECK(table->by_name("ops") == table->by_uid(1000));
}

TEST_CASE("session: what it was granted follows the config across reloads", "[auth]") {
  const auto first = table_of({{"deploy", with_token("deploy", "old")}}, 1);
  ClientSession session(true);
  session.refresh(first);
  CHECK_FALSE(session.admitted());
  CHECK(session.principal() == nullptr);

  session.authenticate_token(first, *first->by_token("old"));
  CHECK(session.admitted());
  CHECK(session.credential() == Credential::token);
  CHECK(session.principal()->name == "deploy");

  SECTION("a reload that keeps the token keeps the principal, with its new permissions") {
    Principal changed = with_token("deploy", "old");
    changed.files = framed::config::FileAccess::read;
    const auto second = table_of({{"deploy", changed}}, 2);
    session.refresh(second);
    REQUIRE(session.principal() != nullptr);
    CHECK(session.principal()->files == framed::config::FileAccess::read);
  }
  SECTION("a reload that changes the token logs the session out") {
    session.refresh(table_of({{"deploy", with_token("deploy", "new")}}, 2));
    CHECK(session.principal() == nullptr);
    CHECK_FALSE(session.admitted());
  }
  SECTION("a reload that removes the principal logs the session out") {
    session.refresh(table_of({}, 2));
    CHECK_FALSE(session.admitted());
  }
}

TEST_CASE("session: a Unix peer is the principal its uid names, looked up after each reload", "[auth]") {
  Principal ops;
  ops.name = "ops";
  ops.unix_uids = {1000};
  ClientSession session(true);
  session.set_peer_uid(1000);
  session.refresh(table_of({}, 1));
  CHECK_FALSE(session.admitted());
  session.refresh(table_of({{"ops", ops}}, 2));
  CHECK(session.admitted());
  CHECK(session.credential() == Credential::unix_uid);
  // Without auth on the listener a session with no principal may still act.
  ClientSession open(false);
  open.refresh(table_of({}, 1));
  CHECK(open.admitted());
  CHECK(open.principal() == nullptr);
}

TEST_CASE("session: a principal's rate is shared by its sessions", "[auth]") {
  Principal slow = with_token("slow", "s");
  slow.rate = 3;
  const auto table = table_of({{"slow", slow}}, 1);
  RateBuckets buckets;
  ClientSession a(true);
  ClientSession b(true);
  a.authenticate_token(table, *table->by_name("slow"));
  b.authenticate_token(table, *table->by_name("slow"));
  int taken = 0;
  for (int i = 0; i < 5; ++i) {
    taken += a.take_request(buckets, kStart) ? 1 : 0;
    taken += b.take_request(buckets, kStart) ? 1 : 0;
  }
  CHECK(taken == 3);
  // Without a rate, nothing is counted.
  ClientSession anyone(false);
  for (int i = 0; i < 100; ++i) REQUIRE(anyone.take_request(buckets, kStart));
}

TEST_CASE("permissions: exec names and channel globs", "[auth]") {
  Principal principal;
  principal.name = "p";
  CHECK(framed::auth::may_exec(principal, "anything"));
  principal.allow_commands = std::vector<std::string>{"deploy"};
  CHECK(framed::auth::may_exec(principal, "deploy"));
  CHECK_FALSE(framed::auth::may_exec(principal, "deploy2"));

  CHECK_FALSE(framed::auth::may_use_channel(principal, "builds.x"));
  principal.channels = {"builds.*", "chat-?"};
  CHECK(framed::auth::may_use_channel(principal, "builds.x"));
  CHECK(framed::auth::may_use_channel(principal, "builds.arm64.done"));
  CHECK(framed::auth::may_use_channel(principal, "chat-a"));
  CHECK_FALSE(framed::auth::may_use_channel(principal, "chat-ab"));
  CHECK_FALSE(framed::auth::may_use_channel(principal, "builds"));
  CHECK_FALSE(framed::auth::may_use_channel(principal, std::string_view("builds.\0x", 9)));
}

TEST_CASE("address counts: bounded per address, given back by the slot", "[auth]") {
  auto counts = std::make_shared<AddressCounts>();
  const auto a = AddressCounts::key_of(inet4("127.0.0.1"));
  const auto mapped = AddressCounts::key_of(inet6("::ffff:127.0.0.1"));
  const auto b = AddressCounts::key_of(inet6("::1"));
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a == mapped);  // one host, whichever socket family it came through
  CHECK(a->size() == 4);
  CHECK(b->size() == 16);
  sockaddr_storage unix_peer{};
  unix_peer.ss_family = AF_UNIX;
  CHECK_FALSE(AddressCounts::key_of(unix_peer));

  std::vector<AddressSlot> slots;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(counts->try_add(*a, 3));
    slots.emplace_back(counts, *a);
  }
  CHECK_FALSE(counts->try_add(*a, 3));
  CHECK(counts->try_add(*b, 3));
  counts->remove(*b);
  CHECK(counts->open(*a) == 3);
  slots.pop_back();
  CHECK(counts->open(*a) == 2);
  CHECK(counts->try_add(*a, 3));
  slots.emplace_back(counts, *a);
  slots.clear();
  CHECK(counts->open(*a) == 0);
}
