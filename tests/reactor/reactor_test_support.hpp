#pragma once
// Shared pieces of the reactor tests: the backend under test (chosen by
// FRAMED_BACKEND, see main.cpp), a handler that records what it is told, and
// ways to run the loop until something happened, bounded by a safety limit
// that only a broken backend ever reaches.

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "base/unique_fd.hpp"
#include "reactor/backend.hpp"
#include "reactor/reactor.hpp"

namespace framed::reactor::testing {

// Generous: a working backend needs milliseconds. Reaching it fails the test.
inline constexpr std::chrono::seconds kSafetyLimit{5};

// Defined in main.cpp: the backend FRAMED_BACKEND names, or null with *why.
std::unique_ptr<Backend> make_backend(std::string* why);

inline std::unique_ptr<Reactor> make_reactor() {
  std::string why;
  auto backend = make_backend(&why);
  INFO(why);
  REQUIRE(backend != nullptr);
  int error = 0;
  auto reactor = Reactor::create(std::move(backend), &error);
  REQUIRE(reactor != nullptr);
  return reactor;
}

// Records every completion; `react`, if set, runs after recording (it may
// submit the next operation, as real handlers do).
class Recorder final : public IoHandler {
 public:
  struct Event {
    std::uint8_t tag;
    std::int32_t result;
    std::uint32_t flags;
  };

  void on_io(std::uint8_t tag, std::int32_t result, std::uint32_t flags) override {
    const Event event{tag, result, flags};
    events.push_back(event);
    if (react) react(event);
  }

  [[nodiscard]] std::size_t count(std::uint8_t tag) const {
    std::size_t n = 0;
    for (const Event& event : events) n += event.tag == tag ? 1 : 0;
    return n;
  }

  std::vector<Event> events;
  std::function<void(const Event&)> react;
};

// Runs the loop in slices of a millisecond until done() holds; false if the
// safety limit passed first.
inline bool run_until(Reactor& reactor, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = kSafetyLimit) {
  const base::TimePoint give_up = base::Clock::now() + limit;
  while (!done()) {
    if (base::Clock::now() >= give_up) return false;
    const TimerId slice = reactor.add_timer(base::Clock::now() + std::chrono::milliseconds(1), [&] { reactor.stop(); });
    reactor.run();
    reactor.cancel_timer(slice);
  }
  return true;
}

// A few full loop iterations, each ended by posted work: lets completions that
// are already on their way arrive, so a test can then say "nothing more came".
inline void settle(Reactor& reactor) {
  for (int round = 0; round < 3; ++round) {
    bool ran = false;
    reactor.post([&] { ran = true; });
    REQUIRE(run_until(reactor, [&] { return ran; }));
  }
}

struct SocketPair {
  base::UniqueFd a;
  base::UniqueFd b;
};

inline SocketPair make_socketpair(int type = SOCK_STREAM) {
  int fds[2] = {-1, -1};
  REQUIRE(::socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  return SocketPair{base::UniqueFd(fds[0]), base::UniqueFd(fds[1])};
}

inline msghdr message_for(iovec* iov, std::size_t count) {
  msghdr message{};
  message.msg_iov = iov;
  message.msg_iovlen = count;
  return message;
}

inline std::uint16_t local_port(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  return ntohs(address.sin_port);
}

inline sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return address;
}

// A non-blocking TCP listener on 127.0.0.1 and a kernel-chosen port.
inline base::UniqueFd make_tcp_listener() {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  const sockaddr_in address = loopback(0);
  REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(fd.get(), 64) == 0);
  return fd;
}

// A blocking client connected to 127.0.0.1:port. connect() returns as soon as
// the handshake is done, before anyone accepts.
inline base::UniqueFd connect_tcp(std::uint16_t port) {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  const sockaddr_in address = loopback(port);
  REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  return fd;
}

}  // namespace framed::reactor::testing
