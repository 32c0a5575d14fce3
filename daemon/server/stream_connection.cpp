#include "server/stream_connection.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>

#include "base/errno_text.hpp"
#include "server/dispatch.hpp"
#include "server/server.hpp"

namespace framed::server {
namespace {

// Sizes chosen for many mostly-idle connections: 10000 clients cost 160 MiB
// of receive buffers at most; a large frame grows the buffer to exactly its
// size (the decoder knows it) and shrink_if_idle gives it back afterwards.
constexpr std::size_t kInitialInputCapacity = 16 * 1024;
constexpr std::size_t kInitialOutputCapacity = 4 * 1024;
// A buffer that grew past this for one large frame is given back once it is
// empty; below it, keeping the memory is cheaper than reallocating for every
// pipelined batch.
constexpr std::size_t kShrinkAbove = 1024 * 1024;
// The least free space a recv is offered, so reads are never tiny.
constexpr std::size_t kMinRecvSpace = 4 * 1024;
// Unsent reply bytes beyond which decoding pauses (with max_pending_replies,
// the bound on what a client that does not read can make us hold: this plus
// one reply).
constexpr std::size_t kOutputHighWater = 4 * 1024 * 1024;
// How long a closing connection keeps draining the peer's unread bytes.
constexpr auto kLingerTime = std::chrono::seconds(2);

}  // namespace

StreamConnection::StreamConnection(Server& server, base::UniqueFd fd, std::shared_ptr<const ListenerSettings> listener,
                                   std::string peer, std::uint64_t id)
    : server_(server),
      reactor_(server.reactor()),
      fd_(std::move(fd)),
      listener_(std::move(listener)),
      peer_(std::move(peer)),
      id_(id),
      in_(kInitialInputCapacity),
      out_(kInitialOutputCapacity),
      sending_(kInitialOutputCapacity),
      decoder_(listener_->format, server.json_parser(), listener_->frame_limits, listener_->byte_order),
      encoder_(listener_->format, listener_->byte_order) {
  token_ = reactor_.register_handler(*this);
  last_activity_ = reactor_.now();
  if (listener_->kind == "unix") peer_credentials_ = exec::read_peer_credentials(fd_.get());
}

StreamConnection::~StreamConnection() {
  reactor_.unregister_handler(token_);
  reactor_.close(fd_);
}

void StreamConnection::start() { arm_recv(); }

void StreamConnection::arm_recv() {
  if (recv_in_flight_ || !fd_) return;
  if (state_ == State::open) {
    if (in_.empty() && in_.capacity() > kShrinkAbove) in_.shrink_if_idle(kInitialInputCapacity);
    in_.ensure_writable(kMinRecvSpace);
  } else if (state_ == State::lingering) {
    in_.clear();  // lingering reads are discarded
  } else {
    return;
  }
  recv_in_flight_ = true;
  reactor_.recv(token_, kRecv, fd_.get(), in_.write_ptr(), in_.writable_size());
}

void StreamConnection::on_io(std::uint8_t tag, std::int32_t result, std::uint32_t /*flags*/) {
  if (tag == kRecv) {
    recv_in_flight_ = false;
    if (state_ == State::closing) return finalize_if_idle();
    on_recv(result);
  } else if (tag == kSend) {
    send_in_flight_ = false;
    if (state_ == State::closing) return finalize_if_idle();
    on_send(result);
  }
}

void StreamConnection::on_recv(std::int32_t result) {
  if (result < 0) {
    if (result == -ECANCELED) return;
    SPDLOG_DEBUG("connection {} from {}: recv failed: {}", id_, peer_, base::errno_text(result));
    return close();
  }
  last_activity_ = reactor_.now();
  if (state_ == State::lingering) {
    if (result == 0 || reactor_.now() >= linger_deadline_) return close();
    return arm_recv();
  }
  if (result == 0) {
    peer_closed_ = true;
    SPDLOG_DEBUG("connection {} from {}: peer shut down its side", id_, peer_);
    if (state_ == State::open) state_ = State::draining;
  } else {
    in_.commit(static_cast<std::size_t>(result));
    server_.stats().total.bytes_in += static_cast<std::uint64_t>(result);
    listener_->stats->bytes_in += static_cast<std::uint64_t>(result);
  }
  process_input();
  flush();
  if (state_ == State::open && !output_full()) arm_recv();
  maybe_finish();
}

void StreamConnection::process_input() {
  // Also runs while draining: a client that half-closes after its last
  // request still gets every reply.
  while (state_ == State::open || state_ == State::draining) {
    if (output_full()) return;  // resumed from on_send once replies drain
    codec::DecodeResult result = decoder_.decode(in_.readable());
    switch (result.status) {
      case codec::DecodeStatus::need_more:
        if (decoder_.header_incomplete(in_.readable())) {
          if (header_started_ == base::TimePoint{}) header_started_ = reactor_.now();
        } else {
          header_started_ = {};
        }
        // The decoder knows the frame's total size (already checked against
        // the limits): make room for all of it at once.
        if (result.frame_size > in_.readable_size()) in_.ensure_writable(result.frame_size - in_.readable_size());
        return;
      case codec::DecodeStatus::frame:
        header_started_ = {};
        handle_frame(result);
        in_.consume(result.frame_size);
        break;
      case codec::DecodeStatus::error:
        SPDLOG_DEBUG("connection {} from {}: {}: {}", id_, peer_, proto::to_string(result.error), result.message);
        fail_stream(result.error, result.message);
        return;
    }
  }
}

void StreamConnection::handle_frame(const codec::DecodeResult& frame) {
  const std::uint64_t sequence = next_sequence_++;
  if (answer_frame(server_, *listener_, frame, decoder_.header_object(), request_, reply_,
                   commands::ReplyRoute{id_, sequence}, peer_credentials_ ? &*peer_credentials_ : nullptr)) {
    queue_reply();
    return;
  }
  WaitingReply& waiting = waiting_.emplace_back();
  waiting.sequence = sequence;
  waiting.id_json = reply_.id_json;
}

void StreamConnection::deliver_deferred(const commands::ReplyRoute& route, proto::Reply& reply) {
  count_outcome(server_, *listener_, *route.stats, reply);
  for (WaitingReply& waiting : waiting_) {
    if (waiting.sequence != route.sequence || waiting.ready) continue;
    reply.id_json = waiting.id_json;
    encoder_.encode(reply, waiting.bytes);
    waiting.ready = true;
    break;
  }
  if (state_ == State::closing || state_ == State::lingering) return;
  const bool was_full = output_full();
  release_ready_replies();
  if (was_full && !output_full() && !recv_in_flight_ && (state_ == State::open || state_ == State::draining)) {
    process_input();
    if (state_ == State::open && !output_full()) arm_recv();
  }
  flush();
  maybe_finish();
}

void StreamConnection::release_ready_replies() {
  while (!waiting_.empty() && waiting_.front().ready) {
    out_.append(waiting_.front().bytes.readable());
    reply_ends_.push_back(bytes_sent_ + unsent_bytes());
    waiting_.pop_front();
  }
}

void StreamConnection::fail_stream(proto::ErrorCode code, std::string_view message) {
  // The frame boundary is lost: what follows in the buffer cannot be trusted.
  reply_.reset();
  answer_error(server_, *listener_, code, message, reply_);
  queue_reply();
  in_.clear();
  header_started_ = {};
  if (state_ == State::open) state_ = State::draining;
}

void StreamConnection::queue_reply() {
  ++server_.stats().total.replies_out;
  ++listener_->stats->replies_out;
  if (!waiting_.empty()) {
    // Behind a deferred reply: encoded now (the request's bytes are about to
    // be consumed), released in order later.
    WaitingReply& waiting = waiting_.emplace_back();
    waiting.sequence = next_sequence_ - 1;
    waiting.ready = true;
    encoder_.encode(reply_, waiting.bytes);
    return;
  }
  encoder_.encode(reply_, out_);
  reply_ends_.push_back(bytes_sent_ + unsent_bytes());
}

bool StreamConnection::output_full() const noexcept {
  return pending_replies() >= listener_->max_pending_replies || unsent_bytes() >= kOutputHighWater;
}

void StreamConnection::flush() {
  if (send_in_flight_ || !fd_ || state_ == State::closing || state_ == State::lingering) return;
  if (sending_.empty()) {
    if (out_.empty()) return;
    std::swap(sending_, out_);
  }
  send_iov_.iov_base = const_cast<char*>(sending_.read_ptr());
  send_iov_.iov_len = sending_.readable_size();
  send_msg_ = msghdr{};
  send_msg_.msg_iov = &send_iov_;
  send_msg_.msg_iovlen = 1;
  send_in_flight_ = true;
  reactor_.sendmsg(token_, kSend, fd_.get(), &send_msg_);
}

void StreamConnection::on_send(std::int32_t result) {
  if (result == -EAGAIN || result == -EINTR) {
    flush();  // nothing was sent; the socket is still good
    return;
  }
  if (result < 0) {
    if (result == -ECANCELED) return;
    SPDLOG_DEBUG("connection {} from {}: send failed: {}", id_, peer_, base::errno_text(result));
    return close();
  }
  last_activity_ = reactor_.now();
  const auto sent = static_cast<std::size_t>(result);
  sending_.consume(sent);
  bytes_sent_ += sent;
  server_.stats().total.bytes_out += sent;
  listener_->stats->bytes_out += sent;
  while (!reply_ends_.empty() && reply_ends_.front() <= bytes_sent_) reply_ends_.pop_front();

  const bool was_full = output_full();
  if (sending_.empty() && sending_.capacity() > kShrinkAbove) sending_.shrink_if_idle(kInitialOutputCapacity);
  // Replies drained below the bounds: decode what was held back, and read
  // again if reading had been paused for it.
  if (!was_full && !recv_in_flight_ && (state_ == State::open || state_ == State::draining)) {
    process_input();
    if (state_ == State::open && !output_full()) arm_recv();
  }
  flush();
  maybe_finish();
}

void StreamConnection::maybe_finish() {
  if (state_ != State::draining) return;
  // Nothing unsent or waiting also means nothing held back by flow control:
  // every whole frame has been answered, and a trailing partial one can
  // never complete.
  if (send_in_flight_ || unsent_bytes() != 0 || !waiting_.empty()) return;
  if (peer_closed_) return close();
  start_lingering();
}

void StreamConnection::start_lingering() {
  state_ = State::lingering;
  ::shutdown(fd_.get(), SHUT_WR);
  linger_deadline_ = reactor_.now() + kLingerTime;
  if (!recv_in_flight_) arm_recv();
}

void StreamConnection::begin_drain() {
  // A recv still in flight stays: what it brings is answered too, and it
  // ends when the peer closes after our replies, or when lingering does.
  // (shutdown(SHUT_RD) would end it at once, but under io_uring it also
  // breaks a send in flight with -EAGAIN.)
  if (state_ == State::open) {
    state_ = State::draining;
    maybe_finish();
  }
}

void StreamConnection::abort() { close(); }

void StreamConnection::check_timeouts(base::TimePoint now) {
  if (state_ == State::closing) return;
  if (state_ == State::lingering) {
    if (now >= linger_deadline_) close();
    return;
  }
  if (header_started_ != base::TimePoint{} && now - header_started_ >= listener_->header_timeout) {
    ++server_.stats().header_timeouts;
    SPDLOG_DEBUG("connection {} from {}: frame header not complete within header_timeout", id_, peer_);
    fail_stream(proto::ErrorCode::timeout, "frame header not completed within header_timeout");
    flush();
    maybe_finish();
    return;
  }
  if (now - last_activity_ >= listener_->idle_timeout) {
    ++server_.stats().idle_timeouts;
    SPDLOG_DEBUG("connection {} from {}: idle for idle_timeout, closing", id_, peer_);
    close();
  }
}

void StreamConnection::close() {
  if (state_ == State::closing) return;
  state_ = State::closing;
  // Operations still in flight must complete before the fd may be closed
  // and this object freed; cancel hurries them.
  if (recv_in_flight_ || send_in_flight_) reactor_.cancel(fd_.get());
  finalize_if_idle();
}

void StreamConnection::finalize_if_idle() {
  if (recv_in_flight_ || send_in_flight_) return;
  reactor_.close(fd_);
  server_.on_connection_closed(*this);
}

}  // namespace framed::server
