// The reload's listener plan: which socket each new listener keeps, which
// are bound, which stop.

#include <catch2/catch.hpp>

#include "server/listener_plan.hpp"

using framed::config::Listener;
using framed::config::ListenerKind;
using framed::server::ListenerInPlace;
using framed::server::plan_listeners;

namespace {

Listener inet(std::string name, ListenerKind kind, std::string address) {
  Listener listener;
  listener.name = std::move(name);
  listener.kind = kind;
  listener.address = std::move(address);
  return listener;
}

Listener unix_socket(std::string name, ListenerKind kind, std::string path) {
  Listener listener;
  listener.name = std::move(name);
  listener.kind = kind;
  listener.path = std::move(path);
  return listener;
}

std::vector<ListenerInPlace> in_place(const std::vector<Listener>& listeners, std::size_t from_systemd = SIZE_MAX) {
  std::vector<ListenerInPlace> out;
  for (std::size_t i = 0; i < listeners.size(); ++i) out.push_back({&listeners[i], i == from_systemd});
  return out;
}

}  // namespace

TEST_CASE("listener plan: the same config keeps every socket untouched", "[reload]") {
  const std::vector<Listener> old{inet("a", ListenerKind::tcp, "127.0.0.1:9000"),
                                  unix_socket("u", ListenerKind::unix_stream, "/run/x.sock")};
  const auto plan = plan_listeners(in_place(old), old);
  REQUIRE(plan.steps.size() == 2);
  CHECK(plan.steps[0].keeps == 0u);
  CHECK(plan.steps[0].unchanged);
  CHECK(plan.steps[1].keeps == 1u);
  CHECK(plan.steps[1].unchanged);
  CHECK(plan.stopped.empty());
}

TEST_CASE("listener plan: added, removed, changed and renamed listeners", "[reload]") {
  const std::vector<Listener> old{inet("a", ListenerKind::tcp, "127.0.0.1:9000"),
                                  inet("b", ListenerKind::udp, "127.0.0.1:9000"),
                                  inet("c", ListenerKind::tcp, "127.0.0.1:9002"),
                                  inet("d", ListenerKind::tcp, "127.0.0.1:9003")};
  std::vector<Listener> next{inet("a", ListenerKind::tcp, "127.0.0.1:9000"),          // limits changed
                             inet("renamed", ListenerKind::udp, "127.0.0.1:9000"),    // b, by address
                             inet("c", ListenerKind::tcp, "127.0.0.1:9102"),          // moved: a new socket
                             inet("new", ListenerKind::tcp, "127.0.0.1:9200")};
  next[0].limits.max_body = 17;
  const auto plan = plan_listeners(in_place(old), next);
  CHECK(plan.steps[0].keeps == 0u);
  CHECK_FALSE(plan.steps[0].unchanged);
  CHECK(plan.steps[1].keeps == 1u);
  CHECK_FALSE(plan.steps[1].unchanged);  // its name changed
  CHECK_FALSE(plan.steps[2].keeps);
  CHECK_FALSE(plan.steps[3].keeps);
  CHECK(plan.stopped == std::vector<std::size_t>{2, 3});
}

TEST_CASE("listener plan: tcp and http share a socket kind; tcp and udp do not", "[reload]") {
  const std::vector<Listener> old{inet("web", ListenerKind::tcp, "127.0.0.1:8080"),
                                  inet("u", ListenerKind::udp, "127.0.0.1:9000")};
  const std::vector<Listener> next{inet("web", ListenerKind::http, "127.0.0.1:8080"),
                                   inet("u", ListenerKind::tcp, "127.0.0.1:9000")};
  const auto plan = plan_listeners(in_place(old), next);
  CHECK(plan.steps[0].keeps == 0u);
  CHECK_FALSE(plan.steps[1].keeps);
  CHECK(plan.stopped == std::vector<std::size_t>{1});
}

TEST_CASE("listener plan: Unix sockets match by path, not by address", "[reload]") {
  const std::vector<Listener> old{unix_socket("s", ListenerKind::unix_stream, "/run/a.sock"),
                                  unix_socket("d", ListenerKind::unix_dgram, "/run/d.sock")};
  const std::vector<Listener> next{unix_socket("s", ListenerKind::unix_stream, "/run/b.sock"),
                                   unix_socket("d2", ListenerKind::unix_dgram, "/run/d.sock")};
  const auto plan = plan_listeners(in_place(old), next);
  CHECK_FALSE(plan.steps[0].keeps);
  CHECK(plan.steps[1].keeps == 1u);
  CHECK(plan.stopped == std::vector<std::size_t>{0});
}

TEST_CASE("listener plan: a socket systemd passed is never stopped", "[reload]") {
  const std::vector<Listener> old{inet("tcp:127.0.0.1:9000", ListenerKind::tcp, "127.0.0.1:9000"),
                                  inet("b", ListenerKind::tcp, "127.0.0.1:9001")};
  const auto plan = plan_listeners(in_place(old, 0), {});
  CHECK(plan.stopped == std::vector<std::size_t>{1});
  CHECK(plan.kept_from_systemd == std::vector<std::size_t>{0});
}
