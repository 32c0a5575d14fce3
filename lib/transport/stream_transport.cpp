#include "transport/stream_transport.hpp"

#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>

namespace framed::transport {
namespace {

// Plaintext encrypted at once: a large reply goes out as several batches,
// so its ciphertext copy never holds more than this beside the plaintext.
constexpr std::size_t kTlsBatch = 256 * 1024;
// What a TLS recv brings at most: one buffer, emptied into the session at
// once, so the plaintext a recv yields is bounded by it too.
constexpr std::size_t kTlsRecvSize = 32 * 1024;

}  // namespace

StreamTransport::StreamTransport(reactor::Reactor& reactor, base::UniqueFd fd, Handler& handler,
                                 const StreamTransportOptions& options, const TlsServerContext* tls)
    : reactor_(reactor),
      fd_(std::move(fd)),
      handler_(handler),
      options_(options),
      input_(options.initial_input_capacity),
      output_(options.initial_output_capacity),
      sending_(options.initial_output_capacity),
      tls_input_(tls != nullptr ? kTlsRecvSize : 0) {
  for (buffer::ByteBuffer* buffer : {&input_, &output_, &sending_, &tls_input_}) buffer->account_to(options.budget);
  if (tls != nullptr) {
    tls_ = std::make_unique<TlsSession>(tls->get(), TlsSession::Role::server);
    if (!tls_->valid()) state_ = State::closing;  // out of memory: start() closes it
  }
  token_ = reactor_.register_handler(*this);
  last_activity_ = reactor_.now();
}

StreamTransport::~StreamTransport() {
  reactor_.unregister_handler(token_);
  reactor_.close(fd_);
}

void StreamTransport::reserve_input(std::size_t total) {
  const std::size_t arrived = input_.readable_size();
  if (total <= arrived) return;
  // Doubling with what arrives keeps the copies linear in the frame's size.
  const std::size_t step = std::max(arrived, options_.initial_input_capacity);
  if (budget_exhausted()) return;  // no room ahead while the budget is spent; arm_recv decides
  input_.ensure_writable(std::min(total - arrived, step));
}

std::size_t StreamTransport::kernel_queued_input() const noexcept {
  int queued = 0;
  if (!fd_ || ::ioctl(fd_.get(), FIONREAD, &queued) != 0 || queued < 0) return 0;
  return static_cast<std::size_t>(queued);
}

void StreamTransport::ensure_recv_room(std::size_t bytes) {
  if (budget_exhausted() && !input_.fits_without_growth(bytes)) return;  // reads stay as large as the buffer is
  input_.ensure_writable(bytes);
}

void StreamTransport::retry_reading() {
  if (!budget_stalled_ || budget_exhausted()) return;
  budget_stalled_ = false;
  arm_recv();
}

void StreamTransport::release_input() {
  if (recv_in_flight_) return;
  input_.clear();
  input_.shrink_if_idle(options_.min_recv_space);
}

void StreamTransport::resume_reading() {
  reading_paused_ = false;
  arm_recv();
}

void StreamTransport::arm_recv() {
  if (recv_in_flight_ || !fd_) return;
  if (tls_ && state_ == State::closing) return finalize_if_idle();
  if (state_ == State::open) {
    if (reading_paused_ || reading_stopped_) return;
    if (input_.empty() && input_.capacity() > options_.shrink_above) {
      input_.shrink_if_idle(options_.initial_input_capacity);
    }
    if (budget_exhausted() && !input_.fits_without_growth(options_.min_recv_space)) {
      budget_stalled_ = true;
      return;
    }
    input_.ensure_writable(options_.min_recv_space);
  } else if (state_ == State::lingering) {
    input_.clear();  // lingering reads are discarded
    if (input_.capacity() > options_.shrink_above) input_.shrink_if_idle(options_.min_recv_space);
  } else {
    return;
  }
  recv_in_flight_ = true;
  if (tls_ && state_ == State::open) {
    tls_input_.clear();
    tls_input_.ensure_writable(kTlsRecvSize);
    reactor_.recv(token_, kRecv, fd_.get(), tls_input_.write_ptr(), kTlsRecvSize);
    return;
  }
  reactor_.recv(token_, kRecv, fd_.get(), input_.write_ptr(),
                std::min(input_.writable_size(), options_.max_recv_size));
}

void StreamTransport::on_io(std::uint8_t tag, std::int32_t result, std::uint32_t /*flags*/) {
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

void StreamTransport::on_recv(std::int32_t result) {
  if (result < 0) {
    if (result == -ECANCELED) return;
    return close();  // a reset or another hard error: nothing more can be sent either
  }
  last_activity_ = reactor_.now();
  if (state_ == State::lingering) {
    if (result == 0 || reactor_.now() >= linger_deadline_) return close();
    return arm_recv();
  }
  if (result == 0) {
    peer_closed_ = true;
    reading_stopped_ = true;
    handler_.on_peer_closed();
  } else if (tls_) {
    on_tls_recv(static_cast<std::size_t>(result));
  } else {
    input_.commit(static_cast<std::size_t>(result));
    handler_.on_input(static_cast<std::size_t>(result));
  }
  if (state_ != State::open) return;
  flush();
  arm_recv();
}

void StreamTransport::on_tls_recv(std::size_t bytes) {
  tls_input_.commit(bytes);
  tls_->receive(tls_input_.readable());
  tls_input_.clear();
  std::size_t produced = 0;
  const TlsSession::Status status = tls_->decrypt(input_, produced);
  if (status == TlsSession::Status::failed) {
    // The alert OpenSSL wrote goes out (best effort), then the socket closes.
    reading_stopped_ = true;
    output_.clear();
    flush();
    if (!send_in_flight_) close();
    return;
  }
  if (produced != 0) handler_.on_input(produced);
  if (status == TlsSession::Status::peer_closed && state_ == State::open) {
    peer_closed_ = true;
    reading_stopped_ = true;
    handler_.on_peer_closed();
  }
}

void StreamTransport::flush() {
  if (send_in_flight_ || !fd_ || state_ != State::open) return;
  if (sending_.empty() && tls_) {
    fill_tls_sending();
    if (sending_.empty()) return;
  } else if (sending_.empty()) {
    if (output_.empty()) return;
    std::swap(sending_, output_);
  }
  send_iov_.iov_base = const_cast<char*>(sending_.read_ptr());
  send_iov_.iov_len = sending_.readable_size();
  send_msg_ = msghdr{};
  send_msg_.msg_iov = &send_iov_;
  send_msg_.msg_iovlen = 1;
  send_in_flight_ = true;
  reactor_.sendmsg(token_, kSend, fd_.get(), &send_msg_);
}

void StreamTransport::fill_tls_sending() {
  if (!output_.empty() && tls_->handshake_done() && !tls_->failed() && !tls_->close_notify_queued()) {
    const std::size_t taken = tls_->encrypt(output_.readable().substr(0, kTlsBatch));
    output_.consume(taken);
    sending_plaintext_ += taken;
    if (output_.empty() && output_.capacity() > options_.shrink_above) {
      output_.shrink_if_idle(options_.initial_output_capacity);
    }
  }
  if (tls_->failed()) output_.clear();  // nothing more can be encrypted
  tls_->take_ciphertext(sending_);
}

void StreamTransport::on_send(std::int32_t result) {
  if (result == -EAGAIN || result == -EINTR) return flush();  // nothing was sent; the socket is still good
  if (result < 0) {
    if (result == -ECANCELED) return;
    return close();
  }
  last_activity_ = reactor_.now();
  auto sent = static_cast<std::size_t>(result);
  sending_.consume(sent);
  if (tls_) {
    // Plaintext counts as sent once all of its batch's ciphertext is.
    sent = sending_.empty() ? std::exchange(sending_plaintext_, 0) : 0;
  }
  bytes_sent_ += sent;
  if (sending_.empty() && sending_.capacity() > options_.shrink_above) {
    sending_.shrink_if_idle(options_.initial_output_capacity);
  }
  if (tls_ && tls_->failed()) {
    flush();  // the rest of the alert
    if (!send_in_flight_) close();
    return;
  }
  handler_.on_sent(sent);
  if (state_ != State::open) return;
  flush();
  arm_recv();
}

void StreamTransport::finish() {
  if (state_ != State::open) return;
  reading_stopped_ = true;
  if (send_in_flight_ || unsent_bytes() != 0) return;  // again from on_sent
  if (tls_ && tls_->handshake_done() && !tls_->close_notify_queued()) {
    // The peer learns the stream ended here, not that it was cut.
    tls_->close_notify();
    flush();
    if (send_in_flight_) return;  // again from on_sent
  }
  if (peer_closed_) return close();
  start_lingering();
}

void StreamTransport::start_lingering() {
  state_ = State::lingering;
  ::shutdown(fd_.get(), SHUT_WR);
  linger_deadline_ = reactor_.now() + options_.linger_time;
  arm_recv();
}

void StreamTransport::check_linger(base::TimePoint now) {
  if (state_ == State::lingering && now >= linger_deadline_) close();
}

void StreamTransport::close() {
  if (state_ == State::closing) return;
  state_ = State::closing;
  // Operations still in flight must complete before the fd may be closed
  // and the buffers they point into freed; cancel hurries them.
  if (recv_in_flight_ || send_in_flight_) reactor_.cancel(fd_.get());
  finalize_if_idle();
}

void StreamTransport::finalize_if_idle() {
  if (recv_in_flight_ || send_in_flight_ || !fd_) return;
  reactor_.close(fd_);
  handler_.on_closed();
}

}  // namespace framed::transport
