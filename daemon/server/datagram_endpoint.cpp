#include "server/datagram_endpoint.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/errno_text.hpp"
#include "server/dispatch.hpp"
#include "server/server.hpp"

namespace framed::server {
namespace {

// The largest UDP payload over IPv4 (65535 - 8 byte UDP header - 20 byte IP
// header); IPv6 allows 20 bytes more, which no client relies on.
constexpr std::size_t kMaxUdpPayload = 65507;
// Unix datagrams may be larger (up to the socket's send buffer); 1 MiB is
// more than any message framed answers from memory needs.
constexpr std::size_t kMaxUnixDatagram = 1024 * 1024;

}  // namespace

DatagramEndpoint::DatagramEndpoint(Server& server, base::UniqueFd fd, std::shared_ptr<const ListenerSettings> settings,
                                   net::SocketAddress address, net::SocketFile socket_file)
    : server_(server),
      reactor_(server.reactor()),
      fd_(std::move(fd)),
      settings_(std::move(settings)),
      address_(address),
      socket_file_(std::move(socket_file)),
      id_(server.next_requester_id()),
      datagram_limit_(address.family() == AF_UNIX ? kMaxUnixDatagram : kMaxUdpPayload),
      // One byte more than the limit, so an oversized datagram is detected
      // even where MSG_TRUNC is not reported.
      in_(std::min<std::size_t>(datagram_limit_, settings_->frame_limits.max_body + 4 +
                                                     settings_->frame_limits.max_header) + 1),
      out_(4096),
      decoder_(server.json_parser(), settings_->frame_limits, settings_->byte_order),
      encoder_(settings_->format, settings_->byte_order) {
  token_ = reactor_.register_handler(*this);
  server_.add_reply_target(id_, *this);
}

DatagramEndpoint::~DatagramEndpoint() {
  server_.remove_reply_target(id_);
  reactor_.unregister_handler(token_);
  reactor_.close(fd_);
}

void DatagramEndpoint::start() { arm_recv(); }

void DatagramEndpoint::arm_recv() {
  if (stopping_ || recv_in_flight_) return;
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
    if (stopping_) return close_if_idle();
    if (result < 0) {
      // ECONNREFUSED and friends are ICMP errors about an earlier reply's
      // destination: that client's problem, not this socket's.
      SPDLOG_DEBUG("{}: recvmsg: {}", settings_->name, base::errno_text(result));
      return arm_recv();
    }
    on_datagram(static_cast<std::size_t>(result), recv_msg_.msg_flags);
  } else if (tag == kSend) {
    send_in_flight_ = false;
    if (result == -EMSGSIZE && !sending_error_ && !stopping_) {
      // Larger than the socket can carry (a Unix datagram over SO_SNDBUF):
      // the sender is told so instead of waiting for nothing.
      proto::Reply error;
      error.id_json = reply_.id_json;
      answer_error(server_, *settings_, proto::ErrorCode::frame_too_large,
                   "reply of " + std::to_string(out_.readable_size()) + " bytes is too large for one datagram",
                   error);
      sending_error_ = true;
      return send_reply(error);
    }
    sending_error_ = false;
    if (result < 0 && result != -ECANCELED) {
      SPDLOG_DEBUG("{}: reply to a sender failed: {}", settings_->name, base::errno_text(result));
    } else if (result >= 0) {
      ++server_.stats().total.datagrams_out;
      ++settings_->stats->datagrams_out;
      server_.stats().total.bytes_out += static_cast<std::uint64_t>(result);
      settings_->stats->bytes_out += static_cast<std::uint64_t>(result);
    }
    if (stopping_) return close_if_idle();
    arm_recv();
  }
}

void DatagramEndpoint::on_datagram(std::size_t size, int msg_flags) {
  in_.commit(size);
  ++server_.stats().total.datagrams_in;
  ++settings_->stats->datagrams_in;
  server_.stats().total.bytes_in += size;
  settings_->stats->bytes_in += size;
  std::memcpy(&reply_to_, &sender_, sizeof sender_);
  reply_to_length_ = recv_msg_.msg_namelen;

  reply_.reset();
  const bool truncated = (msg_flags & MSG_TRUNC) != 0 || size > datagram_limit_;
  const bool json = settings_->format == codec::FrameFormat::datagram_json;
  if (truncated || (!json && size > settings_->frame_limits.max_body)) {
    answer_error(server_, *settings_, proto::ErrorCode::frame_too_large,
                 "datagram exceeds the payload limit of " +
                     std::to_string(std::min<std::uint64_t>(datagram_limit_, settings_->frame_limits.max_body)) +
                     " bytes",
                 reply_);
  } else if (json) {
    codec::DecodeResult frame = decoder_.decode(in_.readable());
    if (frame.status == codec::DecodeStatus::frame && frame.frame_size != size) {
      frame = codec::DecodeResult::fail(proto::ErrorCode::bad_frame, "datagram holds bytes after its frame");
    } else if (frame.status == codec::DecodeStatus::need_more) {
      frame = codec::DecodeResult::fail(proto::ErrorCode::bad_frame, "datagram ends inside its frame");
    }
    if (frame.status == codec::DecodeStatus::frame) {
      awaiting_reply_ = !answer_frame(server_, *settings_, frame, decoder_.header_object(), request_, reply_,
                                      commands::ReplyRoute{id_, sequence_});
    } else {
      answer_error(server_, *settings_, frame.error, frame.message, reply_);
    }
    // A fresh decoder state for the next datagram, whatever happened.
    decoder_ = codec::JsonFrameDecoder(server_.json_parser(), settings_->frame_limits, settings_->byte_order);
  } else {
    codec::DecodeResult payload;
    payload.status = codec::DecodeStatus::frame;
    payload.body = in_.readable();
    awaiting_reply_ =
        !answer_frame(server_, *settings_, payload, {}, request_, reply_, commands::ReplyRoute{id_, sequence_});
  }
  if (awaiting_reply_) return;  // deliver_deferred() sends it
  if (!reply_.ok) server_.note_client_error(settings_->name, reply_to_, reply_);
  send_reply(reply_);
}

void DatagramEndpoint::deliver_deferred(const commands::ReplyRoute& route, proto::Reply& reply) {
  count_outcome(server_, *settings_, *route.stats, reply);
  if (!awaiting_reply_ || route.sequence != sequence_) return;
  awaiting_reply_ = false;
  ++sequence_;
  reply.id_json = reply_.id_json;
  send_reply(reply);
}

void DatagramEndpoint::send_reply(proto::Reply& reply) {
  // An unnamed Unix sender (it never bound an address) cannot be answered.
  if (reply_to_length_ <= sizeof(sa_family_t) && reply_to_.ss_family == AF_UNIX) {
    return stopping_ ? close_if_idle() : arm_recv();
  }
  out_.clear();
  encoder_.encode(reply, out_);
  if (out_.readable_size() > datagram_limit_) {
    const auto size = out_.readable_size();
    const std::string id = reply.id_json;
    reply.reset();
    reply.id_json = id;
    answer_error(server_, *settings_, proto::ErrorCode::frame_too_large,
                 "reply of " + std::to_string(size) + " bytes exceeds the datagram limit", reply);
    out_.clear();
    encoder_.encode(reply, out_);
  }
  ++server_.stats().total.replies_out;
  ++settings_->stats->replies_out;
  send_iov_.iov_base = const_cast<char*>(out_.read_ptr());
  send_iov_.iov_len = out_.readable_size();
  send_msg_ = msghdr{};
  send_msg_.msg_name = &reply_to_;
  send_msg_.msg_namelen = reply_to_length_;
  send_msg_.msg_iov = &send_iov_;
  send_msg_.msg_iovlen = 1;
  send_in_flight_ = true;
  reactor_.sendmsg(token_, kSend, fd_.get(), &send_msg_);
}

void DatagramEndpoint::stop() {
  if (stopping_) return;
  stopping_ = true;
  socket_file_.remove();
  if (recv_in_flight_ || send_in_flight_) reactor_.cancel(fd_.get());
  close_if_idle();
}

void DatagramEndpoint::close_if_idle() {
  if (recv_in_flight_ || send_in_flight_ || awaiting_reply_ || !fd_) return;
  reactor_.close(fd_);
  server_.on_endpoint_stopped();
}

}  // namespace framed::server
