// StreamTransport alone, with a handler that echoes what it receives: bytes
// both ways, half-close and finishing, pausing, the output bound, and a close
// that never resets replies still on their way.

#include <catch2/catch.hpp>
#include <sys/socket.h>

#include <string>

#include "../reactor/reactor_test_support.hpp"
#include "transport/stream_transport.hpp"

namespace {

using namespace framed;
using reactor::testing::make_reactor;
using reactor::testing::make_socketpair;
using reactor::testing::run_until;
using reactor::testing::settle;

// Echoes every byte back; finishes when the peer shuts its side.
class EchoHandler final : public transport::StreamTransport::Handler {
 public:
  void on_input(std::size_t bytes) override {
    received += bytes;
    if (echo) {
      transport->output().append(transport->input().readable());
      transport->input().consume(transport->input().readable_size());
    }
  }
  void on_peer_closed() override {
    peer_closed = true;
    transport->finish();
  }
  void on_sent(std::size_t bytes) override {
    sent += bytes;
    if (peer_closed || finishing) transport->finish();
  }
  void on_closed() override { closed = true; }

  transport::StreamTransport* transport = nullptr;
  bool echo = true;
  bool peer_closed = false;
  bool finishing = false;  // finish() was asked for: ask again as output drains
  bool closed = false;
  std::size_t received = 0;
  std::size_t sent = 0;
};

struct Fixture {
  std::unique_ptr<reactor::Reactor> reactor = make_reactor();
  EchoHandler handler;
  base::UniqueFd client;
  std::unique_ptr<transport::StreamTransport> transport;

  explicit Fixture(transport::StreamTransportOptions options = {}) {
    auto pair = make_socketpair();
    client = std::move(pair.b);
    transport = std::make_unique<transport::StreamTransport>(*reactor, std::move(pair.a), handler, options);
    handler.transport = transport.get();
    transport->start();
  }
  ~Fixture() {
    transport->close();
    run_until(*reactor, [&] { return handler.closed; });
    transport.reset();
    reactor->shut_down_backend();
  }
  std::string read_available() {
    std::string out;
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::recv(client.get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (n <= 0) break;
      out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
  }
};

}  // namespace

TEST_CASE("transport: bytes in are handed over, bytes out are sent", "[transport]") {
  Fixture fixture;
  REQUIRE(::send(fixture.client.get(), "hello", 5, 0) == 5);
  std::string echoed;
  REQUIRE(run_until(*fixture.reactor, [&] {
    echoed += fixture.read_available();
    return echoed == "hello";
  }));
  CHECK(fixture.transport->bytes_sent() == 5);
}

TEST_CASE("transport: after the peer's half-close, what is owed is sent, then EOF", "[transport]") {
  Fixture fixture;
  const std::string request(100000, 'r');
  std::size_t written = 0;
  std::string echoed;
  bool eof = false;
  REQUIRE(run_until(*fixture.reactor, [&] {
    if (written < request.size()) {
      const ssize_t n = ::send(fixture.client.get(), request.data() + written, request.size() - written, MSG_DONTWAIT);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (written == request.size()) ::shutdown(fixture.client.get(), SHUT_WR);
    }
    char buffer[65536];
    const ssize_t n = ::recv(fixture.client.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) echoed.append(buffer, static_cast<std::size_t>(n));
    if (n == 0) eof = true;
    return eof;
  }));
  CHECK(echoed == request);
  CHECK(fixture.handler.peer_closed);
}

TEST_CASE("transport: a paused transport reads nothing until resumed", "[transport]") {
  Fixture fixture;
  fixture.transport->pause_reading();
  REQUIRE(::send(fixture.client.get(), "a", 1, 0) == 1);
  REQUIRE(run_until(*fixture.reactor, [&] { return fixture.handler.received == 1; }));
  // The recv armed before the pause brought that byte; nothing more comes.
  REQUIRE(::send(fixture.client.get(), "bcd", 3, 0) == 3);
  settle(*fixture.reactor);
  CHECK(fixture.handler.received == 1);
  fixture.transport->resume_reading();
  REQUIRE(run_until(*fixture.reactor, [&] { return fixture.handler.received == 4; }));
}

TEST_CASE("transport: output_full at the high-water mark while the peer does not read", "[transport]") {
  transport::StreamTransportOptions options;
  options.output_high_water = 256 * 1024;
  Fixture fixture(options);
  fixture.handler.echo = false;
  fixture.transport->output().append(std::string(4 * 1024 * 1024, 'o'));
  fixture.transport->flush();
  settle(*fixture.reactor);
  CHECK(fixture.transport->output_full());  // the socket took a little; the rest waits
  std::size_t read = 0;
  REQUIRE(run_until(*fixture.reactor, [&] {
    read += fixture.read_available().size();
    return !fixture.transport->output_full();
  }));
  CHECK(fixture.transport->unsent_bytes() < options.output_high_water);
}

TEST_CASE("transport: finish lingers, discarding the peer's bytes, and closes on its EOF", "[transport]") {
  Fixture fixture;
  fixture.handler.echo = false;
  fixture.transport->output().append("bye");
  fixture.handler.finishing = true;
  fixture.transport->finish();
  fixture.transport->flush();
  REQUIRE(run_until(*fixture.reactor,
                    [&] { return fixture.transport->state() == transport::StreamTransport::State::lingering; }));
  // Bytes the peer sends now are read and dropped, so our close is no reset.
  REQUIRE(::send(fixture.client.get(), "late", 4, 0) == 4);
  settle(*fixture.reactor);
  CHECK(fixture.handler.received == 0);
  char buffer[16];
  CHECK(::recv(fixture.client.get(), buffer, sizeof buffer, 0) == 3);
  CHECK(::recv(fixture.client.get(), buffer, sizeof buffer, 0) == 0);  // our write side is shut
  ::shutdown(fixture.client.get(), SHUT_WR);
  REQUIRE(run_until(*fixture.reactor, [&] { return fixture.handler.closed; }));
}
