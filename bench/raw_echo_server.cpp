// raw-echo-server: the ceiling bench/compare measures framed against. One
// thread, one io_uring: accept, recv into the connection's buffer, send
// back exactly what arrived, recv again. No framing, no parsing, no
// allocation per request, so what it reaches at a point is what the kernel
// and the client allow; framed's distance from it is framed's own cost.
// A benchmark reference, not product code: SIGTERM/SIGINT end it with the
// default action (the kernel closes the sockets).
//
//   build/bench/raw-echo-server --port 17000 [--host 127.0.0.1]

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "base/unique_fd.hpp"

namespace {

using framed::base::UniqueFd;

// 64 KiB holds 16 pipelined 1 KiB echoes in one recv, as framed's reads do.
constexpr std::size_t kBufferSize = 64 * 1024;
// Submission queue entries: one operation in flight per connection plus the
// accept; a full queue is submitted and refilled, so this only sets batching.
constexpr unsigned kQueueDepth = 4096;

// One connection has exactly one operation in flight (a recv, or a send of
// what the last recv brought), so its address is the operation's user_data.
struct Connection {
  UniqueFd fd;
  std::array<char, kBufferSize> buffer{};
  std::size_t pending = 0;  // bytes of buffer still to send
  std::size_t sent = 0;     // of those, already sent
  bool sending = false;
};

// Every submission goes through here: a full submission queue is flushed first.
io_uring_sqe* next_sqe(io_uring& ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  if (sqe == nullptr) {
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
  }
  return sqe;
}

void arm_accept(io_uring& ring, int listener) {
  io_uring_sqe* sqe = next_sqe(ring);
  io_uring_prep_accept(sqe, listener, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data(sqe, nullptr);  // null: the listener
}

void arm_recv(io_uring& ring, Connection& connection) {
  connection.sending = false;
  io_uring_sqe* sqe = next_sqe(ring);
  io_uring_prep_recv(sqe, connection.fd.get(), connection.buffer.data(), connection.buffer.size(), 0);
  io_uring_sqe_set_data(sqe, &connection);
}

void arm_send(io_uring& ring, Connection& connection) {
  connection.sending = true;
  io_uring_sqe* sqe = next_sqe(ring);
  io_uring_prep_send(sqe, connection.fd.get(), connection.buffer.data() + connection.sent,
                     connection.pending - connection.sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data(sqe, &connection);
}

// A recv or send finished with `result`: send what came, or recv again once
// all of it went out; anything else (end of stream, an error) closes.
// Returns false when the connection is done with.
bool on_completion(io_uring& ring, Connection& connection, int result) {
  if (result <= 0) return false;
  const auto bytes = static_cast<std::size_t>(result);
  if (!connection.sending) {
    connection.pending = bytes;
    connection.sent = 0;
  } else {
    connection.sent += bytes;
  }
  if (connection.sent < connection.pending) {
    arm_send(ring, connection);
  } else {
    arm_recv(ring, connection);
  }
  return true;
}

UniqueFd listen_on(const std::string& host, std::uint16_t port) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
  } else {
    std::fprintf(stderr, "raw-echo-server: --host must be an IPv4 or IPv6 address, not '%s'\n", host.c_str());
    return UniqueFd();
  }
  UniqueFd fd(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  // A restart right after a run must not wait out TIME_WAIT.
  if (!fd.valid() || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0 ||
      ::listen(fd.get(), SOMAXCONN) != 0) {
    std::fprintf(stderr, "raw-echo-server: cannot listen on %s port %u: %s\n", host.c_str(), unsigned{port},
                 std::strerror(errno));
    return UniqueFd();
  }
  return fd;
}

int run(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned long port = 17000;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--host" || arg == "--port") && i + 1 < argc) {
      const char* value = argv[++i];
      if (arg == "--host") {
        host = value;
        continue;
      }
      char* end = nullptr;
      port = std::strtoul(value, &end, 10);
      if (*value != '\0' && *end == '\0' && port >= 1 && port <= 65535) continue;
    }
    std::fprintf(stderr, "usage: raw-echo-server [--host ADDRESS] [--port N]  (default 127.0.0.1:17000)\n");
    return arg == "--help" ? 0 : 2;
  }

  const UniqueFd listener = listen_on(host, static_cast<std::uint16_t>(port));
  if (!listener.valid()) return 1;
  // The ring setup framed's io_uring backend asks for (lib/reactor/
  // uring_backend.cpp), newest first: completions handled in batches when
  // the thread waits, not by interrupting it. Without the same setup the
  // ceiling would be lower than the daemon it is the ceiling for.
  io_uring ring{};
  int rc = -EINVAL;
  for (const unsigned flags : {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
                                   IORING_SETUP_DEFER_TASKRUN,
                               IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN, 0U}) {
    rc = io_uring_queue_init(kQueueDepth, &ring, flags);
    if (rc != -EINVAL) break;  // an older kernel refuses flags it does not know
  }
  if (rc < 0) {
    std::fprintf(stderr, "raw-echo-server: io_uring_queue_init: %s\n", std::strerror(-rc));
    return 1;
  }
  std::fprintf(stderr, "raw-echo-server: echoing on %s port %lu\n", host.c_str(), port);

  arm_accept(ring, listener.get());
  while (true) {
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc < 0 && rc != -EINTR) {
      std::fprintf(stderr, "raw-echo-server: io_uring_submit_and_wait: %s\n", std::strerror(-rc));
      break;
    }
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      auto* connection = static_cast<Connection*>(io_uring_cqe_get_data(cqe));
      if (connection == nullptr) {
        if (cqe->res >= 0) {
          // Owned by its own in-flight operation from here on; freed when that ends the connection.
          auto accepted = std::make_unique<Connection>();
          accepted->fd.reset(cqe->res);
          const int one = 1;
          ::setsockopt(accepted->fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          arm_recv(ring, *accepted.release());
        }
        arm_accept(ring, listener.get());  // a failed accept (EMFILE, ...) is retried
      } else if (!on_completion(ring, *connection, cqe->res)) {
        const std::unique_ptr<Connection> done(connection);  // closes the socket
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
  io_uring_queue_exit(&ring);
  return 1;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
