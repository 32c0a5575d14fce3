#pragma once
// framectl's side of one connection to the daemon. A client, not the
// reactor: calls block, each wait bounded by poll() and the --timeout
// (the longest framectl waits for the daemon to take or send a byte).
//
// StreamConnection speaks the stream framings: json frames decoded by the
// daemon's own codec::JsonFrameDecoder (the reply format mirrors the
// request format), with a reply's body read in pieces so that a large `get`
// never sits in memory whole; and the simple-mode payloads of `length` and
// `line`. DatagramConnection sends one text datagram and reads one back.
// Failures throw Failure (exit status 3: connection, timeout, protocol).
// With target.tls, the stream is TLS (OpenSSL on the socket itself).

#include <simdjson.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/unique_fd.hpp"
#include "buffer/byte_buffer.hpp"
#include "codec/framing.hpp"
#include "codec/json_frame_decoder.hpp"
#include "codec/length_frame_decoder.hpp"
#include "codec/line_frame_decoder.hpp"
#include "reply_head.hpp"
#include "transport/tls_context.hpp"
#include "transport/tls_session.hpp"
#include "target.hpp"

namespace framed::framectl {

// Thrown out of a wait when the interrupt fd (a signalfd) became readable.
struct Interrupted {};

// Milliseconds for poll(); -1 waits for ever.
using TimeoutMs = int;

class StreamConnection {
 public:
  // Connects (bounded by `timeout`); throws Failure on refusal or timeout.
  StreamConnection(const Target& target, codec::Framing framing, TimeoutMs timeout);
  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;

  // Every later wait: -1 for none (a subscriber waits as long as it takes).
  void set_timeout(TimeoutMs timeout) noexcept { timeout_ = timeout; }
  // While waiting, `fd` becoming readable throws Interrupted (-1: none).
  void set_interrupt_fd(int fd) noexcept { interrupt_fd_ = fd; }

  // Sends all of `bytes`. While the socket is full, what the daemon sends
  // is read into the input buffer (so a daemon answering early never
  // deadlocks against us). Returns false when the daemon stopped taking
  // bytes (it closed or reset the connection): its reply, if one came
  // first, is still read by read_head().
  bool send_all(std::string_view bytes);

  // json framing: the next reply or event header. Its body, body_size()
  // bytes, must be read (read_body*) before the next read_head().
  void read_head(ReplyHead& head);
  // The same, but false when the daemon closed the connection where a
  // frame would begin (a subscriber's connection may end so).
  bool read_head_unless_closed(ReplyHead& head);
  // The body of the last header, in pieces as they arrive.
  void read_body(const std::function<void(std::string_view)>& sink);
  // The body of the last header as one string; a body over `limit` bytes
  // is a protocol failure (it is not what the command answers).
  std::string read_body_string(std::uint64_t limit);

  // length or line framing: the payload of the next reply (line replies
  // unescaped: "\\n" is a newline again).
  std::string read_payload();

 private:
  // Reads at least one byte into input_, or throws.
  void read_more();
  // The same, but false at the end of the stream.
  bool fill();
  // Waits for `events` on the socket (and the interrupt fd).
  short wait(short events);
  [[noreturn]] void closed_early() const;
  void start_tls(const TlsOptions& options);
  // send(2) and recv(2), through TLS when it is on: -1 with errno EAGAIN
  // when the socket must be waited for, 0 at the end of the stream.
  ssize_t transmit(std::string_view bytes);
  ssize_t receive(char* into, std::size_t size);

  std::string description_;
  codec::Framing framing_;
  base::UniqueFd fd_;
  TimeoutMs timeout_;
  transport::UniqueSslCtx tls_ctx_;
  transport::UniqueSsl tls_;
  int interrupt_fd_ = -1;
  bool peer_closed_ = false;
  buffer::ByteBuffer input_;
  simdjson::dom::parser parser_;
  codec::JsonFrameDecoder json_decoder_;
  codec::LengthFrameDecoder length_decoder_;
  codec::LineFrameDecoder line_decoder_;
  std::uint64_t body_left_ = 0;
};

class DatagramConnection {
 public:
  DatagramConnection(const Target& target, TimeoutMs timeout);
  // Sends `payload` as one datagram and returns the one that answers it.
  std::string exchange(std::string_view payload);

 private:
  std::string description_;
  base::UniqueFd fd_;
  TimeoutMs timeout_;
};

}  // namespace framed::framectl
