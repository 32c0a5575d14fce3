#pragma once
// One client on a stream socket (TCP or Unix): the state machine that turns
// its bytes into requests and its replies into bytes, in order.
//
// Life (State):
//   open      reading, decoding, answering;
//   draining  no more reading (peer shut down its side, a protocol error, or
//             the daemon is stopping): answer what is buffered, flush, then
//             close;
//   lingering everything is sent and our write side shut: read and discard
//             until the peer closes (or a short deadline), so that unread
//             bytes of theirs do not turn our close into a reset that would
//             destroy the replies still in flight to them;
//   closing   the socket's operations are being cancelled; the fd is closed
//             and the object destroyed only after their last completion.
//
// Flow control: decoding stops while max_pending_replies replies (or
// kOutputHighWater bytes) are unsent, and recv is not re-armed until they
// drain — a client that never reads its replies is bounded, not buffered.
//
// Buffers: in_ receives (a recv in flight writes into it, so it is touched
// only when no recv is in flight); out_ collects replies while sending_ is in
// the kernel's hands, and the two swap when sending_ is done — the memory a
// send points at never moves under it.
//
// Reactor thread only.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include <sys/socket.h>
#include <sys/uio.h>

#include "base/clock.hpp"
#include "base/unique_fd.hpp"
#include "buffer/byte_buffer.hpp"
#include "codec/stream_decoder.hpp"
#include "codec/reply_encoder.hpp"
#include "exec/peer_credentials.hpp"
#include "proto/reply.hpp"
#include "proto/request.hpp"
#include "reactor/reactor.hpp"
#include "server/dispatch.hpp"
#include "server/listener_settings.hpp"

namespace framed::server {

class Server;

class StreamConnection final : public reactor::IoHandler, public ReplyTarget {
 public:
  enum class State : std::uint8_t { open, draining, lingering, closing };

  StreamConnection(Server& server, base::UniqueFd fd, std::shared_ptr<const ListenerSettings> listener,
                   std::string peer, std::uint64_t id);
  ~StreamConnection();

  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;

  void start();
  // The daemon is stopping: stop reading, answer what is buffered, close.
  void begin_drain();
  // Closes now, dropping whatever is unsent (shutdown deadline).
  void abort();
  // Called by the server's periodic sweep.
  void check_timeouts(base::TimePoint now);

  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  [[nodiscard]] State state() const noexcept { return state_; }
  [[nodiscard]] const std::string& peer() const noexcept { return peer_; }
  [[nodiscard]] TrafficStats& listener_stats() const noexcept { return *listener_->stats; }

  void on_io(std::uint8_t tag, std::int32_t result, std::uint32_t flags) override;
  void deliver_deferred(const commands::ReplyRoute& route, proto::Reply& reply) override;

 private:
  // A reply that must wait its turn: a deferred command's (not ready until
  // delivered), or any reply queued behind one.
  struct WaitingReply {
    std::uint64_t sequence = 0;
    bool ready = false;
    std::string id_json;
    buffer::ByteBuffer bytes{0};
  };

  enum Tag : std::uint8_t { kRecv = 1, kSend = 2 };

  void arm_recv();
  void on_recv(std::int32_t result);
  void on_send(std::int32_t result);
  void process_input();
  void handle_frame(const codec::DecodeResult& frame);
  void fail_stream(proto::ErrorCode code, std::string_view message);
  void queue_reply();
  void release_ready_replies();
  void flush();
  void maybe_finish();
  void start_lingering();
  void close();
  void finalize_if_idle();
  [[nodiscard]] bool output_full() const noexcept;
  [[nodiscard]] std::size_t unsent_bytes() const noexcept { return out_.readable_size() + sending_.readable_size(); }
  [[nodiscard]] std::size_t pending_replies() const noexcept { return reply_ends_.size() + waiting_.size(); }

  Server& server_;
  reactor::Reactor& reactor_;
  base::UniqueFd fd_;
  reactor::IoToken token_;
  std::shared_ptr<const ListenerSettings> listener_;
  std::string peer_;
  std::uint64_t id_;
  // Unix stream peers only: who connected (exec's allow_uids/allow_gids).
  std::optional<exec::PeerCredentials> peer_credentials_;

  State state_ = State::open;
  bool recv_in_flight_ = false;
  bool send_in_flight_ = false;
  bool peer_closed_ = false;  // recv returned 0

  buffer::ByteBuffer in_;
  buffer::ByteBuffer out_;
  buffer::ByteBuffer sending_;
  iovec send_iov_{};
  msghdr send_msg_{};

  codec::StreamDecoder decoder_;
  codec::ReplyEncoder encoder_;
  proto::Request request_;
  proto::Reply reply_;

  // Replies encoded but not yet fully sent: the running byte offset at which
  // each ends. Its length is what max_pending_replies bounds.
  std::deque<std::uint64_t> reply_ends_;
  std::uint64_t bytes_sent_ = 0;
  // Replies held back for order, oldest first; empty unless a command
  // deferred. Counted against max_pending_replies too.
  std::deque<WaitingReply> waiting_;
  std::uint64_t next_sequence_ = 0;

  base::TimePoint last_activity_;
  base::TimePoint header_started_{};  // epoch: no header in progress
  base::TimePoint linger_deadline_{};
};

}  // namespace framed::server
