#include "client.hpp"

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
#include <memory>
#include <utility>

#include "codec.hpp"
#include "base/unique_fd.hpp"
#include "net/resolve.hpp"

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

std::string errno_text(int error) { return std::strerror(error); }

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

enum class ConnState { connecting, open, draining, closed };

struct Connection {
  Connection(unsigned index_in, std::size_t pipeline) : index(index_in), in_flight(pipeline) {}

  unsigned index;
  UniqueFd fd;
  ConnState state = ConnState::connecting;
  std::unique_ptr<ReplyDecoder> decoder;
  InFlightQueue in_flight;
  std::vector<char> out;  // requests queued but not yet written
  std::size_t out_offset = 0;
  std::size_t unstamped = 0;  // requests queued since the last write
  std::uint64_t next_id = 1;
  bool write_interest = false;         // EPOLLOUT registered
  std::optional<std::string> failure;  // set while decoding; acted on after feed()
};

class ClientThread final : public ReplySink {
 public:
  ClientThread(const ThreadConfig& config, ThreadResult& result)
      : config_(config),
        options_(*config.options),
        result_(result),
        spec_{options_.protocol, options_.command, options_.byte_order, config.body},
        read_buffer_(kReadChunk),
        window_end_(config.timeline.measure_end) {}

  void run() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) {
      record_error(nullptr, "epoll_create1: " + errno_text(errno));
      return;
    }
    for (const unsigned index : config_.connection_ids) {
      connections_.push_back(std::make_unique<Connection>(index, options_.pipeline));
    }
    for (auto& connection : connections_) start_connect(*connection);

    std::array<epoll_event, kMaxEvents> events{};
    while (true) {
      const Clock::time_point now = Clock::now();
      update_window_end();
      if (sending_ && now >= window_end_) begin_drain();
      if (!sending_ && (live_ == 0 || now >= config_.timeline.drain_end)) break;

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
      }
      close(*connection);
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
      result_.latency.record(received_at_ - request.sent);
      ++result_.completed;
    }
    // Closed loop: every answer makes room for exactly one new request.
    if (sending_) queue_request(connection);
  }

 private:
  void start_connect(Connection& connection) {
    const Target& target = *config_.target;
    if (Clock::now() >= window_end_) {
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
    if (rc == 0) on_connected(connection);
  }

  void on_connected(Connection& connection) {
    connection.state = ConnState::open;
    ++result_.connected;
    connection.decoder = make_decoder(options_.protocol, options_.byte_order);
    // The first echo reply of each connection is compared byte for byte; the
    // rest only by length, so checking does not become the bottleneck.
    if (options_.command == Command::echo) connection.decoder->check_next_body(spec_.body);
    set_write_interest(connection, false, /*force=*/true);
    while (sending_ && !connection.in_flight.full()) queue_request(connection);
    flush(connection);
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
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0) {
      on_readable(connection);
      if (connection.state == ConnState::closed) return;
    }
    if ((events & EPOLLOUT) != 0) flush(connection);
  }

  void on_readable(Connection& connection) {
    const ssize_t got = ::recv(connection.fd.get(), read_buffer_.data(), read_buffer_.size(), 0);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      fail(connection, "recv: " + errno_text(errno));
      return;
    }
    if (got == 0) {
      fail(connection, "server closed the connection with " + std::to_string(connection.in_flight.size()) +
                           " replies due");
      return;
    }
    // One timestamp per read: replies that arrived together arrived at once.
    received_at_ = Clock::now();
    current_ = &connection;
    auto broken = connection.decoder->feed({read_buffer_.data(), static_cast<std::size_t>(got)}, *this);
    current_ = nullptr;
    if (broken) {
      fail(connection, "bad reply stream: " + *broken);
      return;
    }
    if (connection.failure) {
      fail(connection, *connection.failure);
      return;
    }
    if (connection.state == ConnState::draining && connection.in_flight.empty()) {
      close(connection);
      return;
    }
    // All the requests this read made room for go out in one write.
    flush(connection);
  }

  void queue_request(Connection& connection) {
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
      const ssize_t sent = ::send(connection.fd.get(), connection.out.data() + connection.out_offset,
                                  connection.out.size() - connection.out_offset, MSG_NOSIGNAL);
      if (sent > 0) {
        connection.out_offset += static_cast<std::size_t>(sent);
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // Keep the unsent tail at the front so the buffer does not creep.
        connection.out.erase(connection.out.begin(),
                             connection.out.begin() + static_cast<std::ptrdiff_t>(connection.out_offset));
        connection.out_offset = 0;
        set_write_interest(connection, true);
        return;
      }
      fail(connection, "send: " + errno_text(errno));
      return;
    }
    connection.out.clear();
    connection.out_offset = 0;
    set_write_interest(connection, false);
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
          fail(*connection, "connection not established before the end of the run");
          break;
        case ConnState::open:
          if (connection->in_flight.empty()) {
            close(*connection);
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
    close(connection);
  }

  void close(Connection& connection) {
    if (connection.fd.valid()) {
      // Closing the fd also removes it from the epoll set: nothing else holds it.
      connection.fd.reset();
      --live_;
    }
    connection.state = ConnState::closed;
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
