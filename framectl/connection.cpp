#include "connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>

#include <openssl/err.h>
#include <openssl/ssl.h>

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
  if (target.tls) start_tls(*target.tls);
}

void StreamConnection::start_tls(const TlsOptions& options) {
  const auto fail_tls = [&](std::string what) {
    what.append(": ");
    what.append(transport::take_openssl_error("failed"));
    if (tls_ && SSL_get_verify_result(tls_.get()) != X509_V_OK) {
      what.append(" (");
      what.append(X509_verify_cert_error_string(SSL_get_verify_result(tls_.get())));
      what.append(")");
    }
    throw Failure(ExitStatus::connection, "tls", what);
  };
  tls_ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!tls_ctx_) fail_tls("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(tls_ctx_.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(tls_ctx_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (!options.insecure) {
    const bool loaded = options.ca_file
                            ? SSL_CTX_load_verify_locations(tls_ctx_.get(), options.ca_file->c_str(), nullptr) == 1
                            : SSL_CTX_set_default_verify_paths(tls_ctx_.get()) == 1;
    if (!loaded) fail_tls(concat("cannot load the CA file '", options.ca_file.value_or("(system)"), "'"));
    SSL_CTX_set_verify(tls_ctx_.get(), SSL_VERIFY_PEER, nullptr);
  }
  if (options.certificate) {
    if (SSL_CTX_use_certificate_chain_file(tls_ctx_.get(), options.certificate->c_str()) != 1) {
      fail_tls(concat("cannot load the certificate '", *options.certificate, "'"));
    }
    const std::string& key = options.private_key.value_or(*options.certificate);
    if (SSL_CTX_use_PrivateKey_file(tls_ctx_.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
      fail_tls(concat("cannot load the private key '", key, "'"));
    }
  }
  tls_.reset(SSL_new(tls_ctx_.get()));
  if (!tls_ || SSL_set_fd(tls_.get(), fd_.get()) != 1) fail_tls("cannot start TLS");
  SSL_set_tlsext_host_name(tls_.get(), options.host_name.c_str());
  if (!options.insecure) SSL_set1_host(tls_.get(), options.host_name.c_str());
  while (true) {
    const int result = SSL_connect(tls_.get());
    if (result == 1) return;
    const int error = SSL_get_error(tls_.get(), result);
    if (error == SSL_ERROR_WANT_READ) {
      wait(POLLIN);
    } else if (error == SSL_ERROR_WANT_WRITE) {
      wait(POLLOUT);
    } else {
      fail_tls(concat("TLS handshake with ", description_, " failed"));
    }
  }
}

ssize_t StreamConnection::transmit(std::string_view bytes) {
  if (!tls_) return ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
  const int size = static_cast<int>(std::min<std::size_t>(bytes.size(), 1U << 30));
  const int result = SSL_write(tls_.get(), bytes.data(), size);
  if (result > 0) return result;
  const int error = SSL_get_error(tls_.get(), result);
  // A write waits for room (WANT_WRITE) or, rarely, for the peer (WANT_READ): both are a poll.
  errno = error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ ? EAGAIN
          : error == SSL_ERROR_SYSCALL && errno != 0                   ? errno
                                                                       : EPIPE;
  ERR_clear_error();
  return -1;
}

ssize_t StreamConnection::receive(char* into, std::size_t size) {
  if (!tls_) return ::recv(fd_.get(), into, size, 0);
  const int result = SSL_read(tls_.get(), into, static_cast<int>(std::min<std::size_t>(size, 1U << 30)));
  if (result > 0) return result;
  const int error = SSL_get_error(tls_.get(), result);
  ERR_clear_error();
  if (error == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  if (error == SSL_ERROR_SYSCALL && errno != 0) return -1;
  errno = ECONNRESET;  // cut without close_notify, or a broken record
  return -1;
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
    const ssize_t sent = transmit(bytes);
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
      const ssize_t got = receive(input_.write_ptr(), kReadChunk);
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
    // Plaintext OpenSSL already holds is not in the socket to wait for.
    if (!tls_ || SSL_pending(tls_.get()) == 0) wait(POLLIN);
    input_.ensure_writable(kReadChunk);
    const ssize_t got = receive(input_.write_ptr(), kReadChunk);
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
