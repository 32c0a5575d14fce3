#include "server/stream_connection.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>


namespace framed::server {
namespace {

std::optional<exec::PeerCredentials> credentials_of(int fd, const ListenerSettings& listener) {
  if (listener.kind != "unix") return std::nullopt;
  return exec::read_peer_credentials(fd);
}

}  // namespace

StreamConnection::StreamConnection(reactor::Reactor& reactor, Owner& owner, pipeline::Dispatcher& dispatcher,
                                   simdjson::dom::parser& parser, base::UniqueFd fd,
                                   std::shared_ptr<const ListenerSettings> listener, std::string peer,
                                   std::uint64_t id, buffer::MemoryBudget& budget)
    : reactor_(reactor),
      owner_(owner),
      listener_(std::move(listener)),
      peer_(std::move(peer)),
      id_(id),
      peer_credentials_(credentials_of(fd.get(), *listener_)),
      session_(listener_->auth != config::ListenerAuth::none),
      transport_(reactor, std::move(fd), *this, transport::StreamTransportOptions{.budget = &budget},
                 listener_->tls.get()),
      pipeline_(dispatcher,
                pipeline::Origin{*listener_, peer_credentials_ ? &*peer_credentials_ : nullptr, &session_}, id,
                parser, *this,
                pipeline::PipelineLimits{.max_pending_replies = listener_->max_pending_replies,
                                         .max_event_backlog = listener_->max_event_backlog}),
      accepted_at_(reactor.now()) {
  if (peer_credentials_) session_.set_peer_uid(peer_credentials_->uid);
}

void StreamConnection::count_handshake(bool closed) {
  if (handshake_counted_ || !transport_.tls()) return;
  const transport::TlsSession& session = *transport_.tls_session();
  if (session.handshake_done()) {
    handshake_counted_ = true;
    ++listener_->stats->tls_handshakes;
    // A verified client certificate says who the client is (auth =
    // "certificate", or any principal whose certificate_subject it names).
    if (const transport::TlsPeerIdentity& peer = session.peer(); !peer.empty()) {
      std::vector<std::string> alt_names = peer.dns_names;
      alt_names.insert(alt_names.end(), peer.emails.begin(), peer.emails.end());
      alt_names.insert(alt_names.end(), peer.uris.begin(), peer.uris.end());
      session_.set_certificate(peer.subject, std::move(alt_names));
    }
  } else if (closed || session.failed()) {
    handshake_counted_ = true;
    ++listener_->stats->tls_handshake_failures;
    SPDLOG_DEBUG("connection {} from {}: TLS handshake failed: {}", id_, peer_,
                 session.failed() ? session.failure() : std::string("closed before it completed"));
  }
}

void StreamConnection::on_closed() {
  count_handshake(true);
  owner_.on_connection_closed(*this);
}

bool StreamConnection::push_event(const pipeline::SharedFrame& frame) {
  if (!transport_.open()) return false;
  const bool was_slow = pipeline_.slow_consumer();
  bool queued = false;
  try {
    queued = closing_on_allocation_failure([&] { return pipeline_.push_event(frame); });
  } catch (const std::bad_alloc&) {
    return false;  // this subscriber pays for it, not the publisher whose turn this is
  }
  if (queued) return true;
  if (!was_slow && pipeline_.slow_consumer()) {
    SPDLOG_DEBUG("connection {} from {}: slow subscriber, dropping it", id_, peer_);
    // It takes no more requests (the pipeline is broken): the next on_sent
    // finds it so and finishes the connection once the `dropped` event is
    // out. Not pumped here: a publish may be walking its subscribers.
    owner_.on_slow_consumer(*this);
  }
  return false;
}

void StreamConnection::on_input(std::size_t bytes) {
  count_handshake(false);
  listener_->stats->bytes_in += bytes;
  if (drain_unread_ != 0) {
    if (drain_count_next_read_) drain_unread_ -= std::min(drain_unread_, bytes);
    drain_count_next_read_ = true;
    // The queue is empty: whatever the count still says was read already.
    if (drain_unread_ != 0 && transport_.kernel_queued_input() == 0) drain_unread_ = 0;
  }
  if (body_deadline_ != base::TimePoint{} && listener_->min_body_rate != 0) {
    // Every min_body_rate bytes received give the body one more second.
    body_credit_ += bytes;
    body_deadline_ += std::chrono::seconds(body_credit_ / listener_->min_body_rate);
    body_credit_ %= listener_->min_body_rate;
  }
  pump();
}

void StreamConnection::track_body(std::string_view input) {
  if (!pipeline_.body_begun(input)) {
    body_deadline_ = {};
    return;
  }
  const base::TimePoint now = reactor_.now();
  if (body_deadline_ == base::TimePoint{} || body_frame_ != pipeline_.frames_begun()) {
    body_deadline_ = now + listener_->body_timeout;
    body_frame_ = pipeline_.frames_begun();
    body_credit_ = 0;
    body_held_since_ = {};
  }
  track_body_held(now);
}

void StreamConnection::track_body_held(base::TimePoint now) {
  const bool held = !pipeline_.wants_input();
  if (held && body_held_since_ == base::TimePoint{}) {
    body_held_since_ = now;
  } else if (!held && body_held_since_ != base::TimePoint{}) {
    body_deadline_ += now - body_held_since_;
    body_held_since_ = {};
  }
}

void StreamConnection::on_peer_closed() {
  SPDLOG_DEBUG("connection {} from {}: peer shut down its side", id_, peer_);
  // Also answered: a client that half-closes after its last request still
  // gets every reply.
  draining_ = true;
  pump();
}

void StreamConnection::on_sent(std::size_t bytes) {
  listener_->stats->bytes_out += bytes;
  pipeline_.on_sent(transport_.bytes_sent());
  pump();
}

void StreamConnection::deliver(const commands::ReplyRoute& route, proto::Reply& reply) {
  closing_on_allocation_failure([&] { pipeline_.deliver(route, reply); });
}

void StreamConnection::resume_body(const commands::ReplyRoute& route) {
  closing_on_allocation_failure([&] { pipeline_.resume_body(route); });
}

void StreamConnection::begin_drain() {
  // Requests already in the kernel's queue reached the daemon before the
  // signal: they are read and answered, however the pipeline's bounds pace
  // them. Bytes that arrive later may be read with them, never waited for.
  // A recv still in flight stays: what it brings is answered too, and it
  // ends when the peer closes after our replies, or when lingering does.
  // (shutdown(SHUT_RD) would end it at once, but under io_uring it also
  // breaks a send in flight with -EAGAIN.)
  drain_unread_ = transport_.kernel_queued_input();
  // A recv in flight may already hold bytes the kernel no longer counts:
  // what it brings is not taken from the count.
  drain_count_next_read_ = transport_.input_available();
  draining_ = true;
  pump();
}

void StreamConnection::pump() {
  if (!transport_.open()) return;
  if (transport_.input_available()) {
    buffer::ByteBuffer& input = transport_.input();
    const bool was_broken = pipeline_.broken();
    pipeline_.process(input);
    if (!was_broken && pipeline_.broken()) {
      SPDLOG_DEBUG("connection {} from {}: the stream is broken, closing after the error reply", id_, peer_);
    }
    if (pipeline_.header_incomplete(input.readable())) {
      if (header_started_ == base::TimePoint{}) header_started_ = reactor_.now();
    } else {
      header_started_ = {};
    }
    if (pipeline_.input_wanted() != 0) transport_.reserve_input(pipeline_.input_wanted());
    if (pipeline_.body_read_room() != 0) transport_.ensure_recv_room(pipeline_.body_read_room());
  }
  if (transport_.input_available()) {
    track_body(transport_.input().readable());
  } else if (body_deadline_ != base::TimePoint{}) {
    track_body_held(reactor_.now());  // the input is the recv's in flight: only whether we hold the body back
  }
  // Replies leave before the next read is armed, as a request/reply
  // server wants its round trips ordered.
  transport_.flush();
  if (pipeline_.broken()) draining_ = true;
  // Draining with queued bytes still unread: reading goes on as usual.
  const bool reading_queued = draining_ && drain_unread_ != 0 && !pipeline_.broken() && !transport_.peer_closed();
  if (draining_ && !reading_queued) {
    transport_.stop_reading();
    // A client that closes mid-body (a put cut off) sends nothing more: once
    // the sink has taken every byte that came, the request is abandoned.
    if (transport_.peer_closed() && pipeline_.body_incomplete() && transport_.input_available() &&
        transport_.input().empty()) {
      SPDLOG_DEBUG("connection {} from {}: closed in the middle of a request body", id_, peer_);
      pipeline_.abandon_body();
    }
    if (pipeline_.idle()) transport_.finish();
  } else if (pipeline_.wants_input()) {
    transport_.resume_reading();
  } else {
    transport_.pause_reading();
  }
}

void StreamConnection::shed_for_memory() {
  if (!transport_.open()) return;
  SPDLOG_DEBUG("connection {} from {}: shed, the daemon's buffered-bytes budget is spent", id_, peer_);
  if (transport_.output_full()) {
    // It does not read what it is sent: an error reply would wait behind
    // the rest. Its memory is what the daemon needs back.
    transport_.close();
    return;
  }
  // Its partial request is what holds the memory: dropped, with an answer
  // that says why, and the connection closes after it.
  pipeline_.fail(proto::ErrorCode::too_busy,
                 "the daemon's memory for buffered requests is used up (limits.max_buffered_total)");
  if (transport_.input_available()) transport_.release_input();
  pump();
}

void StreamConnection::check_timeouts(base::TimePoint now) {
  switch (transport_.state()) {
    case transport::StreamTransport::State::closing: return;
    case transport::StreamTransport::State::lingering: return transport_.check_linger(now);
    case transport::StreamTransport::State::open: break;
  }
  count_handshake(false);
  if (transport_.tls_handshaking() && now - accepted_at_ >= listener_->header_timeout) {
    // Counted like a frame header that never completed: the client has
    // not begun to speak the protocol.
    owner_.on_timeout(TimeoutKind::header);
    SPDLOG_DEBUG("connection {} from {}: TLS handshake not complete within header_timeout", id_, peer_);
    transport_.close();
    return;
  }
  if (header_started_ != base::TimePoint{} && now - header_started_ >= listener_->header_timeout) {
    owner_.on_timeout(TimeoutKind::header);
    SPDLOG_DEBUG("connection {} from {}: frame header not complete within header_timeout", id_, peer_);
    header_started_ = {};
    pipeline_.fail(proto::ErrorCode::timeout, "frame header not completed within header_timeout");
    return;
  }
  if (body_deadline_ != base::TimePoint{} && body_held_since_ == base::TimePoint{} && now >= body_deadline_) {
    owner_.on_timeout(TimeoutKind::body);
    SPDLOG_DEBUG("connection {} from {}: request body not complete within body_timeout", id_, peer_);
    body_deadline_ = {};
    // The body's bytes are in the way of the next frame: the error is
    // followed by a close. A put cut off here is kept for resuming.
    pipeline_.fail(proto::ErrorCode::timeout,
                   "request body not completed within body_timeout (at least min_body_rate bytes a second "
                   "extend it)");
    return;
  }
  if (now - transport_.last_activity() >= listener_->idle_timeout) {
    owner_.on_timeout(TimeoutKind::idle);
    SPDLOG_DEBUG("connection {} from {}: idle for idle_timeout, closing", id_, peer_);
    transport_.close();
  }
}

}  // namespace framed::server
