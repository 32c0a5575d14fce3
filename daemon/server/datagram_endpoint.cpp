#include "server/datagram_endpoint.hpp"

#include <fcntl.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/errno_text.hpp"

namespace framed::server {
namespace {

// The largest UDP payload over IPv4 (65535 - 8 byte UDP header - 20 byte IP
// header); IPv6 allows 20 bytes more, which no client relies on.
constexpr std::size_t kMaxUdpPayload = 65507;
// Unix datagrams may be larger (up to the socket's send buffer); 1 MiB is
// more than any message framed answers from memory needs.
constexpr std::size_t kMaxUnixDatagram = 1024 * 1024;

}  // namespace

DatagramEndpoint::DatagramEndpoint(reactor::Reactor& reactor, Owner& owner, pipeline::Dispatcher& dispatcher,
                                   simdjson::dom::parser& parser, base::UniqueFd fd,
                                   std::shared_ptr<const ListenerSettings> settings, net::SocketAddress address,
                                   net::SocketFile socket_file)
    : reactor_(reactor),
      owner_(owner),
      fd_(std::move(fd)),
      settings_(std::move(settings)),
      address_(address),
      socket_file_(std::move(socket_file)),
      dispatcher_(dispatcher),
      parser_(parser),
      datagram_limit_(address.family() == AF_UNIX ? kMaxUnixDatagram : kMaxUdpPayload),
      // One byte more than the limit, so an oversized datagram is detected
      // even where MSG_TRUNC is not reported.
      in_(std::min<std::size_t>(datagram_limit_, settings_->frame_limits.max_body + 4 +
                                                     settings_->frame_limits.max_header) + 1) {
  token_ = reactor_.register_handler(*this);
}

DatagramEndpoint::~DatagramEndpoint() {
  exchanges_.clear();  // they unregister through this endpoint: before anything else goes
  reactor_.unregister_handler(token_);
  reactor_.close(fd_);
}

void DatagramEndpoint::start() { arm_recv(); }

base::UniqueFd DatagramEndpoint::duplicate_socket() const noexcept {
  return base::UniqueFd(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
}

std::size_t DatagramEndpoint::buffered_bytes() const noexcept {
  std::size_t held = 0;
  for (const auto& exchange : exchanges_) held += exchange->buffered_bytes();
  return held;
}

std::size_t DatagramEndpoint::capacity() const noexcept {
  return std::max<std::uint32_t>(settings_->max_pending_replies, 1);
}

DatagramExchange* DatagramEndpoint::free_exchange() {
  if (!free_.empty()) {
    DatagramExchange* exchange = free_.back();
    free_.pop_back();
    return exchange;
  }
  if (exchanges_.size() >= capacity()) return nullptr;
  exchanges_.push_back(std::make_unique<DatagramExchange>(*this, dispatcher_, parser_, *settings_, datagram_limit_));
  return exchanges_.back().get();
}

void DatagramEndpoint::arm_recv() {
  if (stopping_ || recv_in_flight_) return;
  // Every exchange busy: the next datagram waits in the socket's queue
  // until a reply has left.
  if (free_.empty() && exchanges_.size() >= capacity()) return;
  in_.clear();
  recv_iov_.iov_base = in_.write_ptr();
  recv_iov_.iov_len = in_.writable_size();
  recv_msg_ = msghdr{};
  recv_msg_.msg_name = &sender_;
  recv_msg_.msg_namelen = sizeof sender_;
  recv_msg_.msg_iov = &recv_iov_;
  recv_msg_.msg_iovlen = 1;
  recv_in_flight_ = true;
  reactor_.recvmsg(token_, kRecv, fd_.get(), &recv_msg_);
}

void DatagramEndpoint::on_io(std::uint8_t tag, std::int32_t result, std::uint32_t /*flags*/) {
  if (tag == kRecv) {
    recv_in_flight_ = false;
    // A datagram that came in as the receive was being cancelled is
    // answered all the same: it had reached the daemon.
    if (stopping_ && result < 0) return close_if_idle();
    if (result < 0) {
      // ECONNREFUSED and friends are ICMP errors about an earlier reply's
      // destination: that client's problem, not this socket's.
      SPDLOG_DEBUG("{}: recvmsg: {}", settings_->name, base::errno_text(result));
      return arm_recv();
    }
    on_datagram(static_cast<std::size_t>(result), recv_msg_.msg_flags);
  } else if (tag == kSend) {
    send_in_flight_ = false;
    on_sent(result);
  }
}

void DatagramEndpoint::on_datagram(std::size_t size, int msg_flags) {
  in_.commit(size);
  ++settings_->stats->datagrams_in;
  settings_->stats->bytes_in += size;
  DatagramExchange* exchange = free_exchange();  // arm_recv made sure there is one
  if (exchange->take(in_.readable(), (msg_flags & MSG_TRUNC) != 0, sender_, recv_msg_.msg_namelen)) {
    queue_reply(*exchange);
  }
  // A deferred command's reply comes later (on_exchange_ready); the next
  // datagram is read now.
  arm_recv();
}

void DatagramEndpoint::on_exchange_ready(DatagramExchange& exchange) { queue_reply(exchange); }

void DatagramEndpoint::queue_reply(DatagramExchange& exchange) {
  if (!exchange.answerable()) return release(exchange);
  if (const proto::Reply* error = exchange.error()) owner_.note_client_error(settings_->name, exchange.sender(), *error);
  to_send_.push_back(&exchange);
  send_next();
}

void DatagramEndpoint::send_next() {
  if (send_in_flight_ || to_send_.empty()) return;
  DatagramExchange& exchange = *to_send_.front();
  send_iov_.iov_base = const_cast<char*>(exchange.reply().read_ptr());
  send_iov_.iov_len = exchange.reply().readable_size();
  send_msg_ = msghdr{};
  send_msg_.msg_name = const_cast<sockaddr_storage*>(&exchange.sender());
  send_msg_.msg_namelen = exchange.sender_length();
  send_msg_.msg_iov = &send_iov_;
  send_msg_.msg_iovlen = 1;
  send_in_flight_ = true;
  reactor_.sendmsg(token_, kSend, fd_.get(), &send_msg_);
}

void DatagramEndpoint::on_sent(std::int32_t result) {
  DatagramExchange& exchange = *to_send_.front();
  if (result == -EMSGSIZE && !sending_error_ && !stopping_) {
    // Larger than the socket can carry (a Unix datagram over SO_SNDBUF):
    // the sender is told so instead of waiting for nothing.
    sending_error_ = true;
    exchange.replace_reply_too_large();
    return send_next();
  }
  sending_error_ = false;
  if (result < 0 && result != -ECANCELED) {
    SPDLOG_DEBUG("{}: reply to a sender failed: {}", settings_->name, base::errno_text(result));
  } else if (result >= 0) {
    ++settings_->stats->datagrams_out;
    settings_->stats->bytes_out += static_cast<std::uint64_t>(result);
  }
  to_send_.pop_front();
  release(exchange);
  send_next();
}

void DatagramEndpoint::release(DatagramExchange& exchange) {
  exchange.sent();
  free_.push_back(&exchange);
  if (stopping_) return close_if_idle();
  arm_recv();
}

void DatagramEndpoint::stop() {
  if (stopping_) return;
  stopping_ = true;
  socket_file_.remove();
  // Only the receive is cancelled: replies being answered or sent go out,
  // and no receive follows them.
  if (recv_in_flight_) reactor_.cancel(fd_.get());
  close_if_idle();
}

void DatagramEndpoint::close_if_idle() {
  if (recv_in_flight_ || send_in_flight_ || free_.size() != exchanges_.size() || !fd_) return;
  reactor_.close(fd_);
  owner_.on_endpoint_stopped();
}

}  // namespace framed::server
