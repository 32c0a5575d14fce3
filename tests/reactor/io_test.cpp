// I/O through Reactor + Backend over real sockets: the same assertions hold
// for every backend (see main.cpp for how one is chosen).

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "reactor_test_support.hpp"

namespace framed::reactor::testing {
namespace {

constexpr std::uint8_t kTagRecv = 1;
constexpr std::uint8_t kTagSend = 2;
constexpr std::uint8_t kTagAccept = 3;
constexpr std::uint8_t kTagRead = 4;
constexpr std::uint8_t kTagReadable = 5;
constexpr std::uint8_t kTagWritable = 6;

// Drops the first n bytes of an iovec array in place (after a short send).
void consume(std::vector<iovec>& iov, std::size_t n) {
  auto it = iov.begin();
  while (n > 0 && it != iov.end()) {
    const std::size_t take = std::min(n, it->iov_len);
    it->iov_base = static_cast<char*>(it->iov_base) + take;
    it->iov_len -= take;
    n -= take;
    if (it->iov_len == 0) ++it;
  }
  iov.erase(iov.begin(), it);
}

// Lowers RLIMIT_NOFILE for one test and puts it back however the test ends.
class NofileLimit {
 public:
  explicit NofileLimit(rlim_t soft) {
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  }
  ~NofileLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  NofileLimit(const NofileLimit&) = delete;
  NofileLimit& operator=(const NofileLimit&) = delete;

 private:
  rlimit saved_{};
};

}  // namespace

TEST_CASE("bytes sent one at a time arrive whole and in order", "[reactor][stream]") {
  SocketPair pair = make_socketpair();
  const std::string message = "framed: one byte per sendmsg, reassembled by recv";
  std::string received;
  std::array<char, 64> rx{};
  char tx_byte = 0;
  iovec tx_iov{};
  msghdr tx_msg{};
  std::size_t sent = 0;
  Recorder sender;
  Recorder receiver;
  auto reactor = make_reactor();
  const IoToken send_token = reactor->register_handler(sender);
  const IoToken recv_token = reactor->register_handler(receiver);

  auto send_next = [&] {
    tx_byte = message[sent];
    tx_iov = iovec{&tx_byte, 1};
    tx_msg = message_for(&tx_iov, 1);
    reactor->sendmsg(send_token, kTagSend, pair.a.get(), &tx_msg);
  };
  sender.react = [&](const Recorder::Event& event) {
    REQUIRE(event.result == 1);
    if (++sent < message.size()) send_next();  // submitting from inside a completion
  };
  receiver.react = [&](const Recorder::Event& event) {
    REQUIRE(event.result > 0);
    received.append(rx.data(), static_cast<std::size_t>(event.result));
    if (received.size() < message.size()) reactor->recv(recv_token, kTagRecv, pair.b.get(), rx.data(), rx.size());
  };
  reactor->recv(recv_token, kTagRecv, pair.b.get(), rx.data(), rx.size());
  send_next();

  REQUIRE(run_until(*reactor, [&] { return received.size() >= message.size() && sent == message.size(); }));
  CHECK(received == message);
  CHECK(sender.events.size() == message.size());
  CHECK(receiver.count(kTagRecv) == receiver.events.size());
}

TEST_CASE("short sends are returned and the resubmitted rest arrives intact", "[reactor][stream]") {
  SocketPair pair = make_socketpair();
  // Small buffers so that one sendmsg of the payload cannot possibly fit.
  const int small = 4096;
  REQUIRE(::setsockopt(pair.a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  REQUIRE(::setsockopt(pair.b.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);

  std::vector<unsigned char> payload(1 << 20);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<unsigned char>((i * 131) ^ (i >> 9));
  std::vector<unsigned char> received;
  std::vector<unsigned char> rx(3000);  // odd size: recv boundaries never line up with sends
  // Two iovecs, so a short send can stop in either of them.
  std::vector<iovec> iov = {iovec{payload.data(), 300'000}, iovec{payload.data() + 300'000, payload.size() - 300'000}};
  msghdr tx_msg{};
  std::size_t total_sent = 0;
  int short_sends = 0;
  Recorder sender;
  Recorder receiver;
  auto reactor = make_reactor();
  const IoToken send_token = reactor->register_handler(sender);
  const IoToken recv_token = reactor->register_handler(receiver);

  auto send_rest = [&] {
    tx_msg = message_for(iov.data(), iov.size());
    reactor->sendmsg(send_token, kTagSend, pair.a.get(), &tx_msg);
  };
  sender.react = [&](const Recorder::Event& event) {
    REQUIRE(event.result > 0);
    const auto n = static_cast<std::size_t>(event.result);
    total_sent += n;
    REQUIRE(total_sent <= payload.size());
    if (total_sent < payload.size()) {
      ++short_sends;
      consume(iov, n);
      send_rest();
    }
  };
  receiver.react = [&](const Recorder::Event& event) {
    REQUIRE(event.result > 0);
    received.insert(received.end(), rx.begin(), rx.begin() + event.result);
    if (received.size() < payload.size()) reactor->recv(recv_token, kTagRecv, pair.b.get(), rx.data(), rx.size());
  };
  reactor->recv(recv_token, kTagRecv, pair.b.get(), rx.data(), rx.size());
  send_rest();

  REQUIRE(run_until(*reactor, [&] { return received.size() >= payload.size(); }));
  CHECK(total_sent == payload.size());
  CHECK(short_sends > 0);
  CHECK(received.size() == payload.size());
  CHECK(received == payload);
}

TEST_CASE("recv completes with 0 when the peer closes", "[reactor][stream]") {
  SocketPair pair = make_socketpair();
  std::array<char, 16> rx{};
  Recorder receiver;
  auto reactor = make_reactor();
  const IoToken token = reactor->register_handler(receiver);
  reactor->recv(token, kTagRecv, pair.a.get(), rx.data(), rx.size());
  settle(*reactor);
  CHECK(receiver.events.empty());  // nothing to read yet

  pair.b.reset();
  REQUIRE(run_until(*reactor, [&] { return !receiver.events.empty(); }));
  REQUIRE(receiver.events.size() == 1);
  CHECK(receiver.events[0].tag == kTagRecv);
  CHECK(receiver.events[0].result == 0);
  CHECK(receiver.events[0].flags == 0);
}

TEST_CASE("multishot accept takes several connections while staying armed", "[reactor][accept]") {
  base::UniqueFd listener = make_tcp_listener();
  const std::uint16_t port = local_port(listener.get());
  std::vector<base::UniqueFd> clients;
  std::vector<base::UniqueFd> accepted;
  Recorder acceptor;
  acceptor.react = [&](const Recorder::Event& event) {
    if (event.result >= 0) accepted.emplace_back(event.result);
  };
  auto reactor = make_reactor();
  const IoToken token = reactor->register_handler(acceptor);

  // Some connections wait in the backlog before the accept is armed, some
  // arrive while it is armed.
  for (int i = 0; i < 3; ++i) clients.push_back(connect_tcp(port));
  reactor->accept(token, kTagAccept, listener.get());
  REQUIRE(run_until(*reactor, [&] { return accepted.size() >= 3; }));
  for (int i = 0; i < 3; ++i) clients.push_back(connect_tcp(port));
  REQUIRE(run_until(*reactor, [&] { return accepted.size() >= 6; }));

  REQUIRE(acceptor.events.size() == 6);
  for (const Recorder::Event& event : acceptor.events) {
    CHECK(event.tag == kTagAccept);
    CHECK(event.result >= 0);
    CHECK((event.flags & kCompletionMore) != 0);
  }
  // The contract: accepted sockets are non-blocking and close-on-exec, and
  // each is one of our clients' connections.
  for (const base::UniqueFd& fd : accepted) {
    CHECK((::fcntl(fd.get(), F_GETFL) & O_NONBLOCK) != 0);
    CHECK((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    sockaddr_in peer{};
    socklen_t length = sizeof peer;
    REQUIRE(::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &length) == 0);
    const std::uint16_t peer_port = ntohs(peer.sin_port);
    CHECK(std::any_of(clients.begin(), clients.end(),
                      [&](const base::UniqueFd& client) { return local_port(client.get()) == peer_port; }));
  }

  // Cancelling ends it with exactly one completion without kCompletionMore.
  reactor->cancel(listener.get());
  REQUIRE(run_until(*reactor, [&] { return acceptor.events.size() > 6; }));
  settle(*reactor);
  REQUIRE(acceptor.events.size() == 7);
  CHECK(acceptor.events.back().result < 0);
  CHECK((acceptor.events.back().flags & kCompletionMore) == 0);
}

TEST_CASE("accept reports EMFILE once, disarmed, and works again when re-armed", "[reactor][accept]") {
  base::UniqueFd listener = make_tcp_listener();
  const std::uint16_t port = local_port(listener.get());
  // The client socket exists before the fd table is filled; connecting it
  // later needs no new fd, and the handshake completes in the kernel: only
  // accepting the connection needs one.
  base::UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(client.valid());
  std::vector<base::UniqueFd> accepted;
  std::vector<base::UniqueFd> fillers;
  Recorder acceptor;
  acceptor.react = [&](const Recorder::Event& event) {
    if (event.result >= 0) accepted.emplace_back(event.result);
  };
  auto reactor = make_reactor();
  const IoToken token = reactor->register_handler(acceptor);
  {
    // Every fd the test needs exists before the table is filled; the limit
    // sits just above the highest fd in use so that filling it stays cheap.
    base::UniqueFd probe(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(probe.valid());
    NofileLimit limit(static_cast<rlim_t>(probe.get()) + 8);
    while (true) {
      base::UniqueFd filler(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      if (!filler) {
        REQUIRE(errno == EMFILE);
        break;
      }
      fillers.push_back(std::move(filler));
    }
    REQUIRE(fillers.size() >= 4);  // the limit really sat above what was open

    const sockaddr_in address = loopback(port);
    REQUIRE(::connect(client.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    reactor->accept(token, kTagAccept, listener.get());
    REQUIRE(run_until(*reactor, [&] { return !acceptor.events.empty(); }));
    settle(*reactor);
    REQUIRE(acceptor.events.size() == 1);
    CHECK(acceptor.events[0].result == -EMFILE);
    CHECK((acceptor.events[0].flags & kCompletionMore) == 0);
    CHECK(accepted.empty());
  }
  // Limit restored and fds freed: the owner re-arms (after its back-off)
  // and gets the connection that waited in the backlog.
  fillers.clear();
  reactor->accept(token, kTagAccept, listener.get());
  REQUIRE(run_until(*reactor, [&] { return accepted.size() == 1; }));
  REQUIRE(acceptor.events.size() == 2);
  CHECK(acceptor.events[1].result >= 0);
  CHECK((acceptor.events[1].flags & kCompletionMore) != 0);

  reactor->cancel(listener.get());
  REQUIRE(run_until(*reactor, [&] { return acceptor.events.size() == 3; }));
  CHECK((acceptor.events[2].flags & kCompletionMore) == 0);
}

TEST_CASE("cancel ends every outstanding operation on the fd exactly once", "[reactor][cancel]") {
  SocketPair pair = make_socketpair();
  const int small = 4096;
  REQUIRE(::setsockopt(pair.a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  // Fill a's send buffer, so a sendmsg on it has to wait, as the recv does.
  std::vector<char> junk(4096, 'x');
  while (::send(pair.a.get(), junk.data(), junk.size(), MSG_NOSIGNAL) > 0) {
  }
  REQUIRE(errno == EAGAIN);

  std::array<char, 64> rx{};
  std::vector<char> tx(65536, 'y');
  iovec tx_iov{tx.data(), tx.size()};
  const msghdr tx_msg = message_for(&tx_iov, 1);
  Recorder handler;
  auto reactor = make_reactor();
  const IoToken token = reactor->register_handler(handler);
  reactor->recv(token, kTagRecv, pair.a.get(), rx.data(), rx.size());
  reactor->sendmsg(token, kTagSend, pair.a.get(), &tx_msg);
  settle(*reactor);
  REQUIRE(handler.events.empty());  // both really are waiting

  reactor->cancel(pair.a.get());
  REQUIRE(run_until(*reactor, [&] { return handler.events.size() >= 2; }));
  settle(*reactor);
  REQUIRE(handler.count(kTagRecv) == 1);
  REQUIRE(handler.count(kTagSend) == 1);
  for (const Recorder::Event& event : handler.events) {
    // -ECANCELED, or the real result of an operation that the cancel could
    // only end by ending the connection (the shutdown fallback).
    if (event.tag == kTagRecv) CHECK((event.result == -ECANCELED || event.result == 0));
    if (event.tag == kTagSend) CHECK((event.result == -ECANCELED || event.result == -EPIPE));
  }

  // The fd may now be closed; a fresh recv on a new fd still works.
  pair.a.reset();
  SocketPair next = make_socketpair();
  reactor->recv(token, kTagRecv, next.a.get(), rx.data(), rx.size());
  REQUIRE(::send(next.b.get(), "ok", 2, MSG_NOSIGNAL) == 2);
  REQUIRE(run_until(*reactor, [&] { return handler.count(kTagRecv) == 2; }));
  CHECK(handler.events.back().result == 2);
  CHECK(std::string(rx.data(), 2) == "ok");
}

// An fd whose operations are all done is closed through Reactor::close()
// (forget, then close), and its number may come back at once for the next
// socket: that socket's operations must work. (The epoll backend keeps per-fd
// state; without forget() it would never register the new socket.)
TEST_CASE("an fd closed after its last completion can be reused by a new socket", "[reactor][fd-reuse]") {
  std::array<char, 16> rx{};
  Recorder receiver;
  auto reactor = make_reactor();
  const IoToken token = reactor->register_handler(receiver);
  int old_fd = -1;
  {
    SocketPair first = make_socketpair();
    old_fd = first.a.get();
    reactor->recv(token, kTagRecv, first.a.get(), rx.data(), rx.size());
    settle(*reactor);  // waiting for data
    REQUIRE(::send(first.b.get(), "one", 3, MSG_NOSIGNAL) == 3);
    REQUIRE(run_until(*reactor, [&] { return receiver.events.size() == 1; }));
    reactor->close(first.a);  // nothing was outstanding: no cancel() needed
  }

  SocketPair second = make_socketpair();
  REQUIRE((second.a.get() == old_fd || second.b.get() == old_fd));  // the number came back
  const int reused = old_fd;
  const int peer = second.a.get() == reused ? second.b.get() : second.a.get();
  reactor->recv(token, kTagRecv, reused, rx.data(), rx.size());
  settle(*reactor);
  REQUIRE(::send(peer, "two", 3, MSG_NOSIGNAL) == 3);
  REQUIRE(run_until(*reactor, [&] { return receiver.events.size() == 2; }));
  CHECK(receiver.events[1].result == 3);
  CHECK(std::string(rx.data(), 3) == "two");
}

TEST_CASE("a completion after unregister_handler is dropped, even when the slot is reused", "[reactor][generation]") {
  SocketPair stale_pair = make_socketpair();
  SocketPair live_pair = make_socketpair();
  std::array<char, 16> stale_rx{};
  std::array<char, 16> live_rx{};
  Recorder old_handler;
  Recorder new_handler;
  auto reactor = make_reactor();

  const IoToken old_token = reactor->register_handler(old_handler);
  reactor->recv(old_token, kTagRecv, stale_pair.a.get(), stale_rx.data(), stale_rx.size());
  settle(*reactor);  // the recv is in the kernel's hands, waiting
  reactor->unregister_handler(old_token);
  const IoToken new_token = reactor->register_handler(new_handler);
  REQUIRE(new_token.slot == old_token.slot);  // reused: only the generation tells them apart
  REQUIRE(new_token.generation != old_token.generation);

  // The old recv now completes, with the very tag the new handler uses too.
  REQUIRE(::send(stale_pair.b.get(), "stale", 5, MSG_NOSIGNAL) == 5);
  reactor->recv(new_token, kTagRecv, live_pair.a.get(), live_rx.data(), live_rx.size());
  REQUIRE(::send(live_pair.b.get(), "live", 4, MSG_NOSIGNAL) == 4);
  REQUIRE(run_until(*reactor, [&] { return !new_handler.events.empty(); }));
  settle(*reactor);

  CHECK(old_handler.events.empty());
  REQUIRE(new_handler.events.size() == 1);
  CHECK(new_handler.events[0].result == 4);
  CHECK(std::string(live_rx.data(), 4) == "live");
  // The stale recv did complete (the data is gone from the socket), it just
  // reached nobody.
  char left = 0;
  CHECK(::recv(stale_pair.a.get(), &left, 1, MSG_DONTWAIT) == -1);
  CHECK(std::string(stale_rx.data(), 5) == "stale");
}

TEST_CASE("read on an eventfd returns its counter", "[reactor][read]") {
  base::UniqueFd event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  REQUIRE(event.valid());
  std::uint64_t value = 0;
  Recorder reader;
  auto reactor = make_reactor();
  const IoToken token = reactor->register_handler(reader);

  const std::uint64_t five = 5;
  REQUIRE(::write(event.get(), &five, sizeof five) == sizeof five);
  reactor->read(token, kTagRead, event.get(), &value, sizeof value);
  REQUIRE(run_until(*reactor, [&] { return reader.events.size() == 1; }));
  CHECK(reader.events[0].result == static_cast<std::int32_t>(sizeof value));
  CHECK(value == 5);

  // Armed while the counter is zero, completed by another thread's write.
  value = 0;
  reactor->read(token, kTagRead, event.get(), &value, sizeof value);
  settle(*reactor);
  REQUIRE(reader.events.size() == 1);
  std::thread writer([&] {
    const std::uint64_t seven = 7;
    [[maybe_unused]] const auto n = ::write(event.get(), &seven, sizeof seven);
  });
  const bool done = run_until(*reactor, [&] { return reader.events.size() == 2; });
  writer.join();
  REQUIRE(done);
  CHECK(reader.events[1].result == static_cast<std::int32_t>(sizeof value));
  CHECK(value == 7);
}

TEST_CASE("recvmsg on a UDP socket fills in the sender's address", "[reactor][datagram]") {
  auto make_udp = [] {
    base::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    REQUIRE(fd.valid());
    const sockaddr_in address = loopback(0);
    REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    return fd;
  };
  base::UniqueFd receiver_fd = make_udp();
  base::UniqueFd sender_fd = make_udp();
  std::array<char, 128> rx{};
  iovec rx_iov{rx.data(), rx.size()};
  sockaddr_storage from{};
  msghdr rx_msg = message_for(&rx_iov, 1);
  rx_msg.msg_name = &from;
  rx_msg.msg_namelen = sizeof from;
  Recorder receiver;
  auto reactor = make_reactor();
  const IoToken token = reactor->register_handler(receiver);

  reactor->recvmsg(token, kTagRecv, receiver_fd.get(), &rx_msg);
  const std::string datagram = "one datagram";
  const sockaddr_in to = loopback(local_port(receiver_fd.get()));
  REQUIRE(::sendto(sender_fd.get(), datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                   sizeof to) == static_cast<ssize_t>(datagram.size()));
  REQUIRE(run_until(*reactor, [&] { return !receiver.events.empty(); }));

  REQUIRE(receiver.events.size() == 1);
  CHECK(receiver.events[0].result == static_cast<std::int32_t>(datagram.size()));
  CHECK(std::string(rx.data(), datagram.size()) == datagram);
  REQUIRE(rx_msg.msg_namelen == sizeof(sockaddr_in));
  const auto* sender = reinterpret_cast<const sockaddr_in*>(&from);
  CHECK(sender->sin_family == AF_INET);
  CHECK(ntohl(sender->sin_addr.s_addr) == INADDR_LOOPBACK);
  CHECK(ntohs(sender->sin_port) == local_port(sender_fd.get()));
}

TEST_CASE("more operations than the submission queue holds are all submitted and completed", "[reactor][load]") {
  // 1200 recvs queued before the first poll: more than io_uring's 1024-entry
  // SQ, so the backend must submit early (or keep a backlog), never drop.
  constexpr std::size_t kPairs = 600;
  std::vector<SocketPair> pairs;
  pairs.reserve(kPairs);
  for (std::size_t i = 0; i < kPairs; ++i) pairs.push_back(make_socketpair());
  std::vector<std::array<char, 8>> rx(kPairs * 2);
  Recorder receiver;
  auto reactor = make_reactor();
  const IoToken token = reactor->register_handler(receiver);

  for (std::size_t i = 0; i < kPairs; ++i) {
    reactor->recv(token, kTagRecv, pairs[i].a.get(), rx[2 * i].data(), rx[2 * i].size());
    reactor->recv(token, kTagRecv, pairs[i].b.get(), rx[2 * i + 1].data(), rx[2 * i + 1].size());
  }
  settle(*reactor);
  REQUIRE(receiver.events.empty());
  for (std::size_t i = 0; i < kPairs; ++i) {
    REQUIRE(::send(pairs[i].b.get(), "ab", 2, MSG_NOSIGNAL) == 2);
    REQUIRE(::send(pairs[i].a.get(), "cd", 2, MSG_NOSIGNAL) == 2);
  }
  REQUIRE(run_until(*reactor, [&] { return receiver.events.size() >= kPairs * 2; }));
  settle(*reactor);
  REQUIRE(receiver.events.size() == kPairs * 2);
  for (const Recorder::Event& event : receiver.events) CHECK(event.result == 2);
  for (std::size_t i = 0; i < kPairs; ++i) {
    CHECK(std::string(rx[2 * i].data(), 2) == "ab");
    CHECK(std::string(rx[2 * i + 1].data(), 2) == "cd");
  }
}

TEST_CASE("readiness waits are level-triggered, complete once, and wait for the next byte", "[reactor][readiness]") {
  SocketPair pair = make_socketpair();
  Recorder watcher;
  auto reactor = make_reactor();
  const IoToken token = reactor->register_handler(watcher);

  // Writable at once (an empty socket buffer), and only once.
  reactor->wait_writable(token, kTagWritable, pair.a.get());
  REQUIRE(run_until(*reactor, [&] { return watcher.count(kTagWritable) == 1; }));
  CHECK((watcher.events[0].result & POLLOUT) != 0);

  // Nothing to read: the wait stays pending.
  reactor->wait_readable(token, kTagReadable, pair.a.get());
  settle(*reactor);
  CHECK(watcher.count(kTagReadable) == 0);
  REQUIRE(::write(pair.b.get(), "x", 1) == 1);
  REQUIRE(run_until(*reactor, [&] { return watcher.count(kTagReadable) == 1; }));
  CHECK((watcher.events.back().result & POLLIN) != 0);

  // Not read yet: a new wait completes at once (level-triggered).
  reactor->wait_readable(token, kTagReadable, pair.a.get());
  REQUIRE(run_until(*reactor, [&] { return watcher.count(kTagReadable) == 2; }));

  // Drained: the next wait waits for the next byte, and no earlier.
  char byte = 0;
  REQUIRE(::read(pair.a.get(), &byte, 1) == 1);
  reactor->wait_readable(token, kTagReadable, pair.a.get());
  settle(*reactor);
  CHECK(watcher.count(kTagReadable) == 2);
  REQUIRE(::write(pair.b.get(), "y", 1) == 1);
  REQUIRE(run_until(*reactor, [&] { return watcher.count(kTagReadable) == 3; }));

  // A pending wait ends with the fd's cancel: -ECANCELED, or, where the
  // kernel cannot cancel by fd and the socket is shut down instead
  // (io_uring-compat), the real result of that: hung up.
  REQUIRE(::read(pair.a.get(), &byte, 1) == 1);
  reactor->wait_readable(token, kTagReadable, pair.a.get());
  settle(*reactor);
  reactor->cancel(pair.a.get());
  REQUIRE(run_until(*reactor, [&] { return watcher.count(kTagReadable) == 4; }));
  const std::int32_t ended = watcher.events.back().result;
  CHECK((ended == -ECANCELED || (ended > 0 && (ended & POLLHUP) != 0)));
  reactor->close(pair.a);
}

}  // namespace framed::reactor::testing
