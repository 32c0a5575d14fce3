#include "connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>

#include "base/errno_text.hpp"
#include "failure.hpp"

namespace framed::framectl {
namespace {

// What one recv asks for: a get streams at full speed through 256 KiB
// reads without the buffer growing past a few of them.
constexpr std::size_t kReadChunk = 256 * 1024;
// Reply limits. A reply header is a few hundred bytes (an exec reply with
// a long error message: a few KiB); 1 MiB only stops garbage. Bodies are
// read in pieces, never held by the decoder, so its body limit is the
// largest size the wire can announce.
constexpr codec::FrameLimits kReplyLimits{1U << 20, std::numeric_limits<std::uint64_t>::max()};
// A simple-mode reply is held whole (the daemon's max_body bounds it: 64
// MiB by default); past 1 GiB the stream is not what we think it is.
constexpr codec::FrameLimits kPayloadLimits{1ULL << 30, 1ULL << 30};
// The largest UDP payload.
constexpr std::size_t kMaxDatagram = 65535;

[[noreturn]] void fail_connection(const std::string& description, std::string_view what, int error) {
  std::string message(what);
  message.append(" ");
  message.append(description);
  message.append(": ");
  message.append(base::errno_text(error));
  throw Failure(ExitStatus::connection, "connection", message);
}

[[noreturn]] void fail_timeout(const std::string& description, TimeoutMs timeout) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%g", timeout / 1000.0);
  std::string message = "no answer from ";
  message.append(description);
  message.append(" within ");
  message.append(seconds);
  message.append(" s");
  throw Failure(ExitStatus::connection, "timeout", message);
}

base::UniqueFd open_socket(const Target& target, int type) {
  base::UniqueFd fd(::socket(target.address.family(), type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) fail_connection(target.description, "cannot open a socket for", errno);
  return fd;
}

// poll() for one fd and optionally an interrupt fd, restarting on EINTR.
short poll_fd(int fd, short events, int interrupt_fd, TimeoutMs timeout, const std::string& description) {
  pollfd fds[2] = {{fd, events, 0}, {interrupt_fd, POLLIN, 0}};
  const nfds_t count = interrupt_fd >= 0 ? 2 : 1;
  while (true) {
    const int ready = ::poll(fds, count, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      fail_connection(description, "cannot wait for", errno);
    }
    if (ready == 0) fail_timeout(description, timeout);
    if (count == 2 && (fds[1].revents & POLLIN) != 0) throw Interrupted{};
    return fds[0].revents;
  }
}

void connect_socket(const base::UniqueFd& fd, const Target& target, TimeoutMs timeout) {
  if (::connect(fd.get(), target.address.get(), target.address.length) == 0) return;
  if (errno != EINPROGRESS) fail_connection(target.description, "cannot connect to", errno);
  poll_fd(fd.get(), POLLOUT, -1, timeout, target.description);
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  if (error != 0) fail_connection(target.description, "cannot connect to", error);
}

// Undoes the line framing's reply escaping: "\\\\", "\\n", "\\r".
std::string unescape_line(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size()) {
      const char next = line[++i];
      out.push_back(next == 'n' ? '\n' : next == 'r' ? '\r' : next);
    } else {
      out.push_back(line[i]);
    }
  }
  return out;
}

}  // namespace

StreamConnection::StreamConnection(const Target& target, codec::Framing framing, TimeoutMs timeout)
    : description_(target.description),
      framing_(framing),
      fd_(open_socket(target, SOCK_STREAM)),
      timeout_(timeout),
      input_(kReadChunk),
      json_decoder_(parser_, kReplyLimits, codec::ByteOrder::big),
      length_decoder_(kPayloadLimits, codec::ByteOrder::big),
      line_decoder_(kPayloadLimits) {
  connect_socket(fd_, target, timeout);
}

short StreamConnection::wait(short events) { return poll_fd(fd_.get(), events, interrupt_fd_, timeout_, description_); }

void StreamConnection::closed_early() const {
  std::string message = "the daemon at ";
  message.append(description_);
  message.append(" closed the connection before its reply was complete");
  throw Failure(ExitStatus::connection, "connection", message);
}

bool StreamConnection::send_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && errno != EAGAIN) {
      if (errno == EPIPE || errno == ECONNRESET) return false;
      fail_connection(description_, "cannot send to", errno);
    }
    // Full: wait for room, and take in what the daemon says meanwhile
    // (bounded: past a few MiB unread, only room to send is waited for).
    const bool take_input = !peer_closed_ && input_.readable_size() < 4 * kReadChunk;
    const short revents = wait(static_cast<short>(POLLOUT | (take_input ? POLLIN : 0)));
    if (take_input && (revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      input_.ensure_writable(kReadChunk);
      const ssize_t got = ::recv(fd_.get(), input_.write_ptr(), kReadChunk, 0);
      if (got > 0) input_.commit(static_cast<std::size_t>(got));
      if (got == 0 || (got < 0 && errno == ECONNRESET)) {
        peer_closed_ = true;
        return false;
      }
    }
  }
  return true;
}

void StreamConnection::read_more() {
  if (!fill()) closed_early();
}

bool StreamConnection::fill() {
  if (peer_closed_) return false;
  while (true) {
    wait(POLLIN);
    input_.ensure_writable(kReadChunk);
    const ssize_t got = ::recv(fd_.get(), input_.write_ptr(), kReadChunk, 0);
    if (got > 0) {
      input_.commit(static_cast<std::size_t>(got));
      return true;
    }
    if (got == 0 || errno == ECONNRESET) {
      peer_closed_ = true;
      return false;
    }
    if (errno != EAGAIN && errno != EINTR) fail_connection(description_, "cannot receive from", errno);
  }
}

void StreamConnection::read_head(ReplyHead& head) {
  if (!read_head_unless_closed(head)) closed_early();
}

bool StreamConnection::read_head_unless_closed(ReplyHead& head) {
  while (true) {
    const codec::DecodeResult result = json_decoder_.decode(input_.readable());
    if (result.status == codec::DecodeStatus::error) {
      throw Failure(ExitStatus::connection, "protocol", concat("a reply that is not a json frame: ", result.message));
    }
    // A whole frame, or a header announced ahead of its body: either way
    // the header is taken here and the body read by read_body().
    if (result.status == codec::DecodeStatus::frame || result.header_size != 0) {
      head.assign(result.header);
      const std::size_t header_bytes =
          result.status == codec::DecodeStatus::frame ? result.frame_size - result.body.size() : result.header_size;
      body_left_ = result.status == codec::DecodeStatus::frame ? result.body.size() : result.body_size;
      input_.consume(header_bytes);
      json_decoder_.skip_body();
      return true;
    }
    if (!fill()) {
      if (input_.empty()) return false;
      closed_early();
    }
  }
}

void StreamConnection::read_body(const std::function<void(std::string_view)>& sink) {
  while (body_left_ > 0) {
    if (input_.empty()) read_more();
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, input_.readable_size()));
    // Consumed before the sink runs: a sink that throws leaves no state behind.
    const std::string piece(input_.read_ptr(), take);
    input_.consume(take);
    body_left_ -= take;
    sink(piece);
  }
}

std::string StreamConnection::read_body_string(std::uint64_t limit) {
  if (body_left_ > limit) {
    throw Failure(ExitStatus::connection, "protocol",
                  concat("a reply body of ", std::to_string(body_left_), " bytes, more than the ", std::to_string(limit),
                         " this command can answer"));
  }
  std::string body;
  body.reserve(static_cast<std::size_t>(body_left_));
  read_body([&body](std::string_view piece) { body.append(piece); });
  return body;
}

std::string StreamConnection::read_payload() {
  while (true) {
    const codec::DecodeResult result =
        framing_ == codec::Framing::line ? line_decoder_.decode(input_.readable()) : length_decoder_.decode(input_.readable());
    if (result.status == codec::DecodeStatus::error) {
      throw Failure(ExitStatus::connection, "protocol", concat("a reply that is not framed as expected: ", result.message));
    }
    if (result.status == codec::DecodeStatus::frame) {
      std::string payload = framing_ == codec::Framing::line ? unescape_line(result.body) : std::string(result.body);
      input_.consume(result.frame_size);
      return payload;
    }
    read_more();
  }
}

DatagramConnection::DatagramConnection(const Target& target, TimeoutMs timeout)
    : description_(target.description), fd_(open_socket(target, SOCK_DGRAM)), timeout_(timeout) {
  // connect(): send() needs no address, and only the daemon's datagrams
  // are received.
  if (::connect(fd_.get(), target.address.get(), target.address.length) != 0) {
    fail_connection(description_, "cannot connect to", errno);
  }
}

std::string DatagramConnection::exchange(std::string_view payload) {
  if (payload.size() > kMaxDatagram) fail_usage("a UDP datagram holds at most 65535 bytes");
  while (::send(fd_.get(), payload.data(), payload.size(), 0) < 0) {
    if (errno != EINTR) fail_connection(description_, "cannot send to", errno);
  }
  std::string reply(kMaxDatagram, '\0');
  while (true) {
    poll_fd(fd_.get(), POLLIN, -1, timeout_, description_);
    const ssize_t got = ::recv(fd_.get(), reply.data(), reply.size(), 0);
    if (got >= 0) {
      reply.resize(static_cast<std::size_t>(got));
      return reply;
    }
    // ECONNREFUSED: an ICMP port unreachable came back (nothing listens).
    if (errno != EAGAIN && errno != EINTR) fail_connection(description_, "no datagram back from", errno);
  }
}

}  // namespace framed::framectl
