#pragma once
// A datagram socket (UDP or Unix datagram): one datagram in, one datagram
// back to its sender. Each datagram holds one whole message (a json frame or
// a simple-mode payload, per the listener's `payload`), so there is no
// reassembly and no connection state. Garbage gets an error datagram and
// never disturbs other senders.
//
// One receive and one reply at a time: the next datagram is read once the
// reply to the previous one has been handed to the kernel. The socket's own
// receive queue is the bounded buffer in between, and under overload the
// kernel drops datagrams, which is UDP's contract with its clients.

#include <memory>
#include <sys/socket.h>
#include <sys/uio.h>
#include <vector>

#include "base/unique_fd.hpp"
#include "buffer/byte_buffer.hpp"
#include "codec/json_frame_decoder.hpp"
#include "codec/reply_encoder.hpp"
#include "net/socket_address.hpp"
#include "net/socket_file.hpp"
#include "proto/reply.hpp"
#include "proto/request.hpp"
#include "reactor/reactor.hpp"
#include "server/dispatch.hpp"
#include "server/listener_settings.hpp"

namespace framed::server {

class Server;

class DatagramEndpoint final : public reactor::IoHandler, public ReplyTarget {
 public:
  DatagramEndpoint(Server& server, base::UniqueFd fd, std::shared_ptr<const ListenerSettings> settings,
                   net::SocketAddress address, net::SocketFile socket_file);
  ~DatagramEndpoint();

  DatagramEndpoint(const DatagramEndpoint&) = delete;
  DatagramEndpoint& operator=(const DatagramEndpoint&) = delete;

  void start();
  void stop();
  [[nodiscard]] bool stopped() const noexcept { return !fd_ && !recv_in_flight_ && !send_in_flight_ && !awaiting_reply_; }
  [[nodiscard]] const std::shared_ptr<const ListenerSettings>& settings() const noexcept { return settings_; }
  [[nodiscard]] const net::SocketAddress& address() const noexcept { return address_; }

  void on_io(std::uint8_t tag, std::int32_t result, std::uint32_t flags) override;
  // A deferred command's reply: sent, and only then is the next datagram read.
  void deliver_deferred(const commands::ReplyRoute& route, proto::Reply& reply) override;

 private:
  enum Tag : std::uint8_t { kRecv = 1, kSend = 2 };

  void arm_recv();
  void on_datagram(std::size_t size, int msg_flags);
  void send_reply(proto::Reply& reply);
  void close_if_idle();

  Server& server_;
  reactor::Reactor& reactor_;
  base::UniqueFd fd_;
  reactor::IoToken token_;
  std::shared_ptr<const ListenerSettings> settings_;
  net::SocketAddress address_;
  net::SocketFile socket_file_;
  std::uint64_t id_;
  std::uint64_t sequence_ = 0;
  bool awaiting_reply_ = false;  // a deferred command is working on the last datagram
  bool sending_error_ = false;   // the datagram in flight already replaces a reply too large
  bool stopping_ = false;
  bool recv_in_flight_ = false;
  bool send_in_flight_ = false;
  std::size_t datagram_limit_;  // the largest datagram read whole

  buffer::ByteBuffer in_;
  iovec recv_iov_{};
  msghdr recv_msg_{};
  sockaddr_storage sender_{};

  buffer::ByteBuffer out_;
  iovec send_iov_{};
  msghdr send_msg_{};
  sockaddr_storage reply_to_{};
  socklen_t reply_to_length_ = 0;

  codec::JsonFrameDecoder decoder_;
  codec::ReplyEncoder encoder_;
  proto::Request request_;
  proto::Reply reply_;
};

}  // namespace framed::server
