#include "client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <utility>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "codec.hpp"
#include "base/unique_fd.hpp"
#include "net/resolve.hpp"
#include "transport/tls_session.hpp"

namespace framed::bench {
namespace {

using base::UniqueFd;

// One read per readiness event, shared by the thread's connections: large
// enough that 16 pipelined 1 KiB echo replies arrive in one call, small
// enough to stay in L2.
constexpr std::size_t kReadChunk = 256 * 1024;
constexpr int kMaxEvents = 256;
// How long an idle thread may take to notice Ctrl-C.
constexpr std::chrono::milliseconds kStopPoll{50};
// Error messages kept per thread; the count covers the rest.
constexpr std::size_t kMaxErrorSamples = 5;
// A Unix connect() cannot be non-blocking (EAGAIN means "backlog full",
// not "in progress"), so it blocks, for at most this long.
constexpr std::chrono::seconds kUnixConnectTimeout{2};

// SSL_read and SSL_write take an int length.
constexpr std::size_t kMaxTlsCall = std::size_t{1} << 30;

std::string errno_text(int error) { return std::strerror(error); }

// A TLS failure in words: OpenSSL's reason, the certificate check's verdict
// when that is what failed, or the socket's errno when OpenSSL has nothing.
std::string tls_error_text(SSL* ssl, int saved_errno) {
  std::string text = transport::take_openssl_error(saved_errno != 0 ? std::strerror(saved_errno)
                                                                     : "connection closed by the server");
  if (const long verdict = SSL_get_verify_result(ssl); verdict != X509_V_OK) {
    text.append(" (certificate: ").append(X509_verify_cert_error_string(verdict)).append(")");
  }
  return text;
}

bool is_ip_literal(const std::string& name) {
  in6_addr address{};
  return ::inet_pton(AF_INET, name.c_str(), &address) == 1 || ::inet_pton(AF_INET6, name.c_str(), &address) == 1;
}

bool ensure_fd_limit(rlim_t wanted, std::string& error) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return true;  // cannot tell; let socket() say
  if (limit.rlim_cur >= wanted) return true;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted) {
    error = "need " + std::to_string(wanted) + " file descriptors, the hard limit is " + std::to_string(limit.rlim_max);
    return false;
  }
  limit.rlim_cur = wanted;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    error = std::string("setrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
    return false;
  }
  return true;
}

// Requests in flight on one connection, oldest first. Replies come back in
// request order (PROTOCOL.md §3, and RESP), so the front entry is always
// the one the next reply answers. Capacity = --pipeline, never exceeded.
class InFlightQueue {
 public:
  struct Entry {
    std::uint64_t id = 0;
    Clock::time_point sent;
  };

  explicit InFlightQueue(std::size_t capacity) : slots_(capacity) {}

  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] bool full() const noexcept { return size_ == slots_.size(); }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  void push(std::uint64_t id) noexcept {
    slots_[(head_ + size_) % slots_.size()] = Entry{id, Clock::time_point{}};
    ++size_;
  }
  Entry pop() noexcept {
    const Entry entry = slots_[head_];
    head_ = (head_ + 1) % slots_.size();
    --size_;
    return entry;
  }
  // Stamps the newest `count` entries: the ones the write about to happen carries.
  void stamp_newest(std::size_t count, Clock::time_point when) noexcept {
    for (std::size_t i = size_ - count; i < size_; ++i) slots_[(head_ + i) % slots_.size()].sent = when;
  }

 private:
  std::vector<Entry> slots_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

// handshaking: TCP is up, the TLS handshake is not finished (--tls only).
enum class ConnState { connecting, handshaking, open, draining, closed };

struct Connection {
  Connection(unsigned index_in, std::size_t pipeline, std::uint64_t budget)
      : index(index_in), in_flight(pipeline), requests_left(budget) {}

  unsigned index;
  UniqueFd fd;
  transport::UniqueSsl ssl;  // --tls: the session on fd; reset before fd
  ConnState state = ConnState::connecting;
  std::unique_ptr<ReplyDecoder> decoder;
  InFlightQueue in_flight;
  std::vector<char> out;  // requests queued but not yet written
  std::size_t out_offset = 0;
  std::size_t unstamped = 0;  // requests queued since the last write
  std::uint64_t next_id = 1;
  // --requests: this connection's share still to be sent; without it, no
  // limit (UINT64_MAX).
  std::uint64_t requests_left;
  bool write_interest = false;         // EPOLLOUT registered
  std::optional<std::string> failure;  // set while decoding; acted on after feed()
  // A TLS read that failed after it had bytes: they are decoded first, then
  // this fails the connection (OpenSSL may not report it again).
  std::optional<std::string> read_error;
  bool ever_connected = false;         // counted in ThreadResult::connected
  // SSL_read needs the socket writable (a TLS 1.3 key update to answer):
  // EPOLLOUT then means "read again", and flush() must not drop EPOLLOUT.
  bool read_wants_write = false;
  // --mode handshake: when this cycle's socket was made (its latency starts
  // there), and whether its reply came (the connection is closed and made
  // again once the decoder has returned, not from inside it).
  Clock::time_point cycle_started;
  bool cycle_done = false;
};

class ClientThread final : public ReplySink {
 public:
  ClientThread(const ThreadConfig& config, ThreadResult& result)
      : config_(config),
        options_(*config.options),
        result_(result),
        spec_{options_.protocol, options_.command, options_.byte_order, config.body},
        read_buffer_(kReadChunk),
        window_end_(config.timeline.measure_end),
        handshake_mode_(options_.mode == Mode::handshake),
        server_name_is_ip_(is_ip_literal(options_.tls.server_name)) {}

  void run() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) {
      record_error(nullptr, "epoll_create1: " + errno_text(errno));
      return;
    }
    for (const unsigned index : config_.connection_ids) {
      connections_.push_back(std::make_unique<Connection>(index, options_.pipeline, request_budget(index)));
    }
    for (auto& connection : connections_) start_connect(*connection, /*first=*/true);

    std::array<epoll_event, kMaxEvents> events{};
    while (true) {
      const Clock::time_point now = Clock::now();
      update_window_end();
      if (sending_ && now >= window_end_) begin_drain();
      if (!sending_ && (live_ == 0 || now >= config_.timeline.drain_end)) break;
      if (fixed_count_ && live_ == 0) break;  // every share sent and answered (or failed)

      const Clock::time_point boundary = sending_ ? window_end_ : config_.timeline.drain_end;
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(boundary - now);
      const int timeout_ms = static_cast<int>(std::clamp(wait, std::chrono::milliseconds{0}, kStopPoll).count());
      const int ready = ::epoll_wait(epoll_.get(), events.data(), kMaxEvents, timeout_ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        record_error(nullptr, "epoll_wait: " + errno_text(errno));
        break;
      }
      for (int i = 0; i < ready; ++i) {
        auto* connection = static_cast<Connection*>(events[static_cast<std::size_t>(i)].data.ptr);
        on_event(*connection, events[static_cast<std::size_t>(i)].events);
      }
    }

    for (auto& connection : connections_) {
      if (connection->state == ConnState::closed) continue;
      if (!connection->in_flight.empty()) {
        // A reply that never came is a lost reply as far as the bench can tell.
        ++result_.undrained;
        record_error(connection.get(), std::to_string(connection->in_flight.size()) +
                                           " replies still due when the drain time ran out");
      } else if (connection->state == ConnState::connecting || connection->state == ConnState::handshaking) {
        // Only handshake mode lets a cycle finish after the window; seconds later it is stuck.
        record_error(connection.get(), "connection or handshake still unfinished when the drain time ran out");
      }
      close(*connection, /*orderly=*/true);
    }
  }

  // ReplySink: one complete reply on current_, in request order.
  void on_reply(const Reply& reply) override {
    Connection& connection = *current_;
    if (connection.failure) return;
    if (connection.in_flight.empty()) {
      connection.failure = "a reply arrived with no request outstanding";
      return;
    }
    const InFlightQueue::Entry request = connection.in_flight.pop();
    const Expectation expected{options_.protocol, options_.command, spec_.body.size(), request.id};
    if (auto problem = check_reply(reply, expected)) {
      record_error(&connection, *problem);
    } else if (received_at_ >= config_.timeline.measure_begin && received_at_ < window_end_) {
      // A handshake cycle's latency is all of it: connect, handshake, request, reply.
      result_.latency.record(received_at_ - (handshake_mode_ ? connection.cycle_started : request.sent));
      ++result_.completed;
      result_.last_reply = received_at_;
    }
    if (handshake_mode_) {
      connection.cycle_done = true;
    } else if (sending_ && connection.requests_left > 0) {
      // Closed loop: every answer makes room for exactly one new request.
      queue_request(connection);
    }
  }

 private:
  // first: the connection's first connect; handshake mode connects again
  // after every cycle, and a cycle begun just before the window ended may
  // finish in the drain.
  void start_connect(Connection& connection, bool first) {
    const Target& target = *config_.target;
    connection.cycle_started = Clock::now();
    if (first && connection.cycle_started >= window_end_) {
      // Connecting took the whole run (a server not accepting): stop trying.
      fail(connection, "not connected before the end of the run");
      return;
    }
    const int flags = SOCK_STREAM | SOCK_CLOEXEC | (target.tcp ? SOCK_NONBLOCK : 0);
    connection.fd.reset(::socket(target.address.ss_family, flags, 0));
    if (!connection.fd.valid()) {
      fail(connection, "socket: " + errno_text(errno));
      return;
    }
    ++live_;
    const int fd = connection.fd.get();
    if (target.tcp) {
      // Small pipelined requests must leave at once, not wait for Nagle.
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    } else {
      const timeval timeout{kUnixConnectTimeout.count(), 0};
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    }

    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&target.address), target.length);
    if (rc != 0 && !(target.tcp && errno == EINPROGRESS)) {
      fail(connection, "connect to " + target.description + ": " + errno_text(errno));
      return;
    }
    if (!target.tcp) {
      const timeval none{0, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
      if (const int fl = ::fcntl(fd, F_GETFL); fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        fail(connection, "fcntl(O_NONBLOCK): " + errno_text(errno));
        return;
      }
    }

    epoll_event event{};
    event.events = rc == 0 ? EPOLLIN : EPOLLOUT;
    event.data.ptr = &connection;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
      fail(connection, "epoll_ctl: " + errno_text(errno));
      return;
    }
    connection.write_interest = rc != 0;
    connection.state = ConnState::connecting;
    if (rc == 0) on_connected(connection);
  }

  // TCP is up: with --tls the handshake starts, else the connection is ready.
  void on_connected(Connection& connection) {
    if (config_.tls == nullptr) {
      ++result_.handshakes;
      on_established(connection);
      return;
    }
    connection.ssl.reset(SSL_new(config_.tls));
    if (!connection.ssl || SSL_set_fd(connection.ssl.get(), connection.fd.get()) != 1) {
      fail(connection, "cannot start TLS: " + transport::take_openssl_error("SSL_new failed"));
      return;
    }
    SSL* ssl = connection.ssl.get();
    const std::string& name = options_.tls.server_name;
    // SNI carries host names only (RFC 6066 §3); an address is checked
    // against the certificate's IP entries instead of its DNS names.
    if (!server_name_is_ip_) SSL_set_tlsext_host_name(ssl, name.c_str());
    if (!options_.tls.insecure) {
      const int named = server_name_is_ip_ ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str())
                                           : SSL_set1_host(ssl, name.c_str());
      if (named != 1) {
        fail(connection, "cannot check the certificate for '" + name + "': " +
                             transport::take_openssl_error("rejected"));
        return;
      }
    }
    SSL_set_connect_state(ssl);
    connection.state = ConnState::handshaking;
    set_write_interest(connection, false, /*force=*/true);
    if (connection.state == ConnState::closed) return;  // epoll_ctl failed
    continue_handshake(connection);
  }

  // One step of the handshake on a non-blocking socket: OpenSSL says what it
  // waits for (WANT_READ: the server's next flight; WANT_WRITE: room in the
  // send buffer), and the next epoll event on it calls this again.
  void continue_handshake(Connection& connection) {
    SSL* ssl = connection.ssl.get();
    ERR_clear_error();
    errno = 0;
    const int rc = SSL_connect(ssl);
    if (rc == 1) {
      ++result_.handshakes;
      on_established(connection);
      return;
    }
    const int saved_errno = errno;
    switch (SSL_get_error(ssl, rc)) {
      case SSL_ERROR_WANT_READ:
        set_write_interest(connection, false);
        return;
      case SSL_ERROR_WANT_WRITE:
        set_write_interest(connection, true);
        return;
      default:
        fail(connection, "TLS handshake with " + config_.target->description + " failed: " +
                             tls_error_text(ssl, saved_errno));
    }
  }

  // Ready for requests: TCP connected and, with --tls, the handshake done.
  void on_established(Connection& connection) {
    connection.state = ConnState::open;
    if (!connection.ever_connected) {
      connection.ever_connected = true;
      ++result_.connected;
    }
    if (!sending_) {
      // Handshake mode: a cycle begun before the window ended; its handshake counts, no request follows.
      close(connection, /*orderly=*/true);
      return;
    }
    connection.decoder = make_decoder(options_.protocol, options_.byte_order);
    // The first echo reply of each connection is compared byte for byte; the
    // rest only by length, so checking does not become the bottleneck.
    if (options_.command == Command::echo) connection.decoder->check_next_body(spec_.body);
    set_write_interest(connection, false, /*force=*/true);
    if (connection.state == ConnState::closed) return;  // epoll_ctl failed
    if (handshake_mode_) {
      queue_request(connection);  // a cycle has one request
    } else {
      while (!connection.in_flight.full() && connection.requests_left > 0) queue_request(connection);
    }
    flush(connection);
  }

  // Handshake mode: this cycle's reply came. Close (close_notify first, so
  // the server sees an orderly end) and, while the window lasts, start the
  // next cycle on the same slot.
  void finish_cycle(Connection& connection) {
    close(connection, /*orderly=*/true);
    if (sending_) start_connect(connection, /*first=*/false);
  }

  void on_event(Connection& connection, std::uint32_t events) {
    if (connection.state == ConnState::closed) return;
    if (connection.state == ConnState::connecting) {
      int error = 0;
      socklen_t length = sizeof error;
      if (::getsockopt(connection.fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      if (error != 0) {
        fail(connection, "connect to " + config_.target->description + ": " + errno_text(error));
      } else if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
        on_connected(connection);
      }
      return;
    }
    if (connection.state == ConnState::handshaking) {
      // Whatever the event, SSL_connect says what happened (an error or a hang-up fails it).
      continue_handshake(connection);
      return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0 ||
        ((events & EPOLLOUT) != 0 && connection.read_wants_write)) {
      on_readable(connection);  // flushes too
      return;
    }
    if ((events & EPOLLOUT) != 0) flush(connection);
  }

  void on_readable(Connection& connection) {
    while (true) {
      const std::optional<std::size_t> got = connection.ssl ? receive_tls(connection) : receive_plain(connection);
      if (!got) return;  // failed, and closed
      if (*got == 0) break;
      // One timestamp per read: replies that arrived together arrived at once.
      received_at_ = Clock::now();
      current_ = &connection;
      auto broken = connection.decoder->feed({read_buffer_.data(), *got}, *this);
      current_ = nullptr;
      if (broken) {
        fail(connection, "bad reply stream: " + *broken);
        return;
      }
      if (connection.failure) {
        fail(connection, *connection.failure);
        return;
      }
      if (connection.read_error) {
        fail(connection, *connection.read_error);
        return;
      }
      if (connection.cycle_done) {
        finish_cycle(connection);
        return;
      }
      if (connection.state == ConnState::draining && connection.in_flight.empty()) {
        close(connection, /*orderly=*/true);
        return;
      }
      // Plaintext: one read per event (level-triggered epoll reports the
      // rest). TLS: a full buffer may leave decrypted bytes in the session,
      // which epoll cannot see, so read on until OpenSSL wants the socket.
      if (!connection.ssl || *got < read_buffer_.size()) break;
    }
    // All the requests this read made room for go out in one write.
    flush(connection);
  }

  // One recv into read_buffer_: the byte count, 0 for nothing yet, nullopt
  // once the connection failed (and was closed).
  std::optional<std::size_t> receive_plain(Connection& connection) {
    const ssize_t got = ::recv(connection.fd.get(), read_buffer_.data(), read_buffer_.size(), 0);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
      fail(connection, "recv: " + errno_text(errno));
      return std::nullopt;
    }
    if (got == 0) {
      fail_server_closed(connection);
      return std::nullopt;
    }
    return static_cast<std::size_t>(got);
  }

  // SSL_read until read_buffer_ is full or the session needs the socket:
  // one call returns at most one record (16 KiB), and a record whose rest
  // has not arrived is kept inside OpenSSL. Same results as receive_plain.
  std::optional<std::size_t> receive_tls(Connection& connection) {
    SSL* ssl = connection.ssl.get();
    connection.read_wants_write = false;
    std::size_t filled = 0;
    while (filled < read_buffer_.size()) {
      ERR_clear_error();
      errno = 0;
      const int got = SSL_read(ssl, read_buffer_.data() + filled,
                               static_cast<int>(std::min(read_buffer_.size() - filled, kMaxTlsCall)));
      if (got > 0) {
        filled += static_cast<std::size_t>(got);
        continue;
      }
      const int saved_errno = errno;
      const int error = SSL_get_error(ssl, got);
      if (error == SSL_ERROR_WANT_READ) break;
      if (error == SSL_ERROR_WANT_WRITE) {
        connection.read_wants_write = true;
        set_write_interest(connection, true);
        if (connection.state == ConnState::closed) return std::nullopt;  // epoll_ctl failed
        break;
      }
      std::string message = error == SSL_ERROR_ZERO_RETURN  // close_notify
                                ? server_closed_text(connection)
                                : "TLS read: " + tls_error_text(ssl, saved_errno);
      if (filled > 0) {
        connection.read_error = std::move(message);  // after the bytes before it
        break;
      }
      fail(connection, message);
      return std::nullopt;
    }
    return filled;
  }

  static std::string server_closed_text(const Connection& connection) {
    return "server closed the connection with " + std::to_string(connection.in_flight.size()) + " replies due";
  }
  void fail_server_closed(Connection& connection) { fail(connection, server_closed_text(connection)); }

  // --requests: connection `index`'s share, the remainder going to the first ones.
  std::uint64_t request_budget(unsigned index) const noexcept {
    if (!fixed_count_) return std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t connections = options_.connections;
    return options_.requests / connections + (index < options_.requests % connections ? 1 : 0);
  }

  void queue_request(Connection& connection) {
    // Its share sent: the connection closes once the replies are in, as in the drain.
    if (--connection.requests_left == 0 && fixed_count_) connection.state = ConnState::draining;
    const std::uint64_t id = connection.next_id++;
    append_request(connection.out, spec_, id);
    connection.in_flight.push(id);
    ++connection.unstamped;
  }

  void flush(Connection& connection) {
    if (connection.unstamped > 0) {
      connection.in_flight.stamp_newest(connection.unstamped, Clock::now());
      connection.unstamped = 0;
    }
    while (connection.out_offset < connection.out.size()) {
      const char* data = connection.out.data() + connection.out_offset;
      const std::size_t left = connection.out.size() - connection.out_offset;
      if (connection.ssl) {
        SSL* ssl = connection.ssl.get();
        ERR_clear_error();
        errno = 0;
        // SSL_MODE_ENABLE_PARTIAL_WRITE: it returns after each record it
        // wrote, like send(); a retry after WANT_* passes the same bytes
        // (more may follow them), at a new address once the buffer moved
        // (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
        const int sent = SSL_write(ssl, data, static_cast<int>(std::min(left, kMaxTlsCall)));
        if (sent > 0) {
          connection.out_offset += static_cast<std::size_t>(sent);
          continue;
        }
        const int saved_errno = errno;
        const int error = SSL_get_error(ssl, sent);
        if (error == SSL_ERROR_WANT_WRITE) {
          keep_unsent(connection, /*wait_writable=*/true);
          return;
        }
        if (error == SSL_ERROR_WANT_READ) {
          // The session needs the server's bytes first: on_readable flushes after reading.
          keep_unsent(connection, /*wait_writable=*/false);
          return;
        }
        fail(connection, "TLS write: " + tls_error_text(ssl, saved_errno));
        return;
      }
      const ssize_t sent = ::send(connection.fd.get(), data, left, MSG_NOSIGNAL);
      if (sent > 0) {
        connection.out_offset += static_cast<std::size_t>(sent);
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        keep_unsent(connection, /*wait_writable=*/true);
        return;
      }
      fail(connection, "send: " + errno_text(errno));
      return;
    }
    connection.out.clear();
    connection.out_offset = 0;
    set_write_interest(connection, connection.read_wants_write);
  }

  // A write that could not finish: the unsent tail moves to the front so the
  // buffer does not creep, and EPOLLOUT is asked for when the socket's room
  // is what it waits for.
  void keep_unsent(Connection& connection, bool wait_writable) {
    connection.out.erase(connection.out.begin(),
                         connection.out.begin() + static_cast<std::ptrdiff_t>(connection.out_offset));
    connection.out_offset = 0;
    set_write_interest(connection, wait_writable || connection.read_wants_write);
  }

  void set_write_interest(Connection& connection, bool want, bool force = false) {
    if (!force && connection.write_interest == want) return;
    epoll_event event{};
    event.events = std::uint32_t{EPOLLIN} | std::uint32_t{EPOLLRDHUP} | (want ? std::uint32_t{EPOLLOUT} : 0U);
    event.data.ptr = &connection;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.fd.get(), &event) != 0) {
      fail(connection, "epoll_ctl: " + errno_text(errno));
      return;
    }
    connection.write_interest = want;
  }

  void update_window_end() {
    const Clock::rep stop = config_.stop_at->load(std::memory_order_relaxed);
    if (stop != 0) window_end_ = std::min(config_.timeline.measure_end, Clock::time_point(Clock::duration(stop)));
  }

  // The window is over: stop sending, let replies still due come back (so
  // the server is not left writing into reset sockets), then close.
  void begin_drain() {
    sending_ = false;
    for (auto& connection : connections_) {
      switch (connection->state) {
        case ConnState::connecting:
        case ConnState::handshaking:
          // A handshake cycle under way finishes (on_established closes it); in load
          // mode every connection should have been ready long before.
          if (!handshake_mode_) fail(*connection, "connection not established before the end of the run");
          break;
        case ConnState::open:
          if (connection->in_flight.empty()) {
            close(*connection, /*orderly=*/true);
          } else {
            connection->state = ConnState::draining;
          }
          break;
        case ConnState::draining:
        case ConnState::closed:
          break;
      }
    }
  }

  void fail(Connection& connection, const std::string& message) {
    record_error(&connection, message);
    close(connection, /*orderly=*/false);
  }

  // orderly: the exchange ended as planned, so a TLS session says
  // close_notify first (one non-blocking try: the server then sees an end,
  // not a truncation). Not after a failure: OpenSSL must not write on a
  // session that had a fatal error.
  void close(Connection& connection, bool orderly) {
    if (connection.ssl) {
      if (orderly && SSL_is_init_finished(connection.ssl.get()) == 1) SSL_shutdown(connection.ssl.get());
      ERR_clear_error();
      connection.ssl.reset();
    }
    if (connection.fd.valid()) {
      // Closing the fd also removes it from the epoll set: nothing else holds it.
      connection.fd.reset();
      --live_;
    }
    connection.state = ConnState::closed;
    connection.write_interest = false;
    connection.read_wants_write = false;
    connection.cycle_done = false;
    connection.failure.reset();
    connection.read_error.reset();
    connection.out.clear();
    connection.out_offset = 0;
    connection.unstamped = 0;
  }

  void record_error(const Connection* connection, const std::string& message) {
    ++result_.errors;
    if (result_.error_samples.size() >= kMaxErrorSamples) return;
    result_.error_samples.push_back(
        connection == nullptr ? message : "connection " + std::to_string(connection->index) + ": " + message);
  }

  const ThreadConfig& config_;
  const Options& options_;
  ThreadResult& result_;
  RequestSpec spec_;
  UniqueFd epoll_;
  std::vector<std::unique_ptr<Connection>> connections_;  // stable addresses: epoll data points at them
  std::vector<char> read_buffer_;
  Clock::time_point window_end_;  // measure_end, or earlier when stopped
  Clock::time_point received_at_;  // of the read being decoded
  Connection* current_ = nullptr;  // the connection being decoded
  std::size_t live_ = 0;          // connections with an open fd
  bool sending_ = true;
  const bool handshake_mode_;
  const bool fixed_count_ = options_.requests != 0;  // --requests
  const bool server_name_is_ip_;  // --server-name is an address: no SNI, IP check
};

}  // namespace

std::optional<Target> resolve_target(const ServerOptions& options, std::string& error) {
  Target target;
  std::optional<net::SocketAddress> address;
  if (!options.unix_path.empty()) {
    address = net::SocketAddress::unix_path(options.unix_path);
    if (!address) {
      error = "Unix socket path is too long: " + options.unix_path;
      return std::nullopt;
    }
    target.tcp = false;
  } else {
    // A bare IPv6 host gets its brackets back, so the port stays unambiguous.
    const bool ipv6 = options.host.find(':') != std::string::npos;
    std::string host_port = ipv6 ? "[" : "";
    host_port.append(options.host);
    host_port.append(ipv6 ? "]:" : ":");
    host_port.append(std::to_string(options.port));
    address = net::resolve_host_port(host_port, SOCK_STREAM, error);
    if (!address) return std::nullopt;
  }
  std::memcpy(&target.address, &address->storage, sizeof target.address);
  target.length = address->length;
  target.description = target.tcp ? address->to_string() : options.unix_path;
  return target;
}

std::optional<Target> prepare_target(std::string_view program, const ServerOptions& options, rlim_t fds) {
  std::string error;
  std::optional<Target> target = resolve_target(options, error);
  if (target && !ensure_fd_limit(fds, error)) target.reset();
  if (!target) std::fprintf(stderr, "%s: %s\n", std::string(program).c_str(), error.c_str());
  return target;
}

transport::UniqueSslCtx make_client_tls_context(const TlsOptions& options, std::string& error) {
  transport::UniqueSslCtx context(SSL_CTX_new(TLS_client_method()));
  if (!context) {
    error = "cannot create a TLS context: " + transport::take_openssl_error("SSL_CTX_new failed");
    return nullptr;
  }
  // What framed's listeners accept (docs/tls.md); Redis allows the same.
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(context.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Every handshake is a full one: the bench never offers a saved session,
  // so handshake mode measures the same work against every server.
  SSL_CTX_set_session_cache_mode(context.get(), SSL_SESS_CACHE_OFF);
  if (!options.insecure) {
    const bool loaded = options.ca_file.empty()
                            ? SSL_CTX_set_default_verify_paths(context.get()) == 1
                            : SSL_CTX_load_verify_locations(context.get(), options.ca_file.c_str(), nullptr) == 1;
    if (!loaded) {
      error = "cannot load the CA file '" + (options.ca_file.empty() ? std::string("(system store)") : options.ca_file) +
              "': " + transport::take_openssl_error("not loaded");
      return nullptr;
    }
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, nullptr);
  }
  return context;
}

void run_client_thread(const ThreadConfig& config, ThreadResult& result) noexcept {
  try {
    ClientThread thread(config, result);
    thread.run();
  } catch (const std::exception& e) {
    ++result.errors;
    result.error_samples.push_back(std::string("client thread failed: ") + e.what());
  }
}

}  // namespace framed::bench
