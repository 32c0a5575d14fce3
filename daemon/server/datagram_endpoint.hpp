#pragma once
// A datagram socket (UDP or Unix datagram): one datagram in, one datagram
// back to its sender. Each datagram holds one whole message (a json frame or
// a simple-mode payload, per the listener's `payload`), answered through the
// same RequestPipeline as a stream connection, so every transport answers
// alike. There is no reassembly and no connection state; garbage gets an
// error datagram and never disturbs other senders.
//
// One receive and one reply at a time: the next datagram is read once the
// reply to the previous one has been handed to the kernel. The socket's own
// receive queue is the bounded buffer in between, and under overload the
// kernel drops datagrams, which is UDP's contract with its clients.

#include <simdjson.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <memory>
#include <string>

#include "base/unique_fd.hpp"
#include "buffer/byte_buffer.hpp"
#include "net/socket_address.hpp"
#include "net/socket_file.hpp"
#include "pipeline/dispatcher.hpp"
#include "pipeline/request_pipeline.hpp"
#include "reactor/reactor.hpp"
#include "server/listener_settings.hpp"
#include "server/requester_target.hpp"

namespace framed::server {

class DatagramEndpoint final : public reactor::IoHandler, public pipeline::FrameOutput, public RequesterTarget {
 public:
  // What an endpoint reports to (its shard).
  class Owner {
   public:
    // Registers the endpoint for deferred replies; returns its requester id.
    [[nodiscard]] virtual std::uint64_t add_requester(RequesterTarget& target) = 0;
    virtual void remove_requester(std::uint64_t id) = 0;
    // Once it has stopped during shutdown.
    virtual void on_endpoint_stopped() = 0;
    // A sender's protocol error, for a rate-limited debug line.
    virtual void note_client_error(const std::string& listener, const sockaddr_storage& peer,
                                   const proto::Reply& reply) = 0;

   protected:
    ~Owner() = default;
  };

  DatagramEndpoint(reactor::Reactor& reactor, Owner& owner, pipeline::Dispatcher& dispatcher,
                   simdjson::dom::parser& parser, base::UniqueFd fd, std::shared_ptr<const ListenerSettings> settings,
                   net::SocketAddress address, net::SocketFile socket_file);
  ~DatagramEndpoint();

  DatagramEndpoint(const DatagramEndpoint&) = delete;
  DatagramEndpoint& operator=(const DatagramEndpoint&) = delete;

  void start();
  // Stops receiving; what was received is still answered, then the socket
  // closes (stopped()).
  void stop();
  // A reload that changes this listener's settings: a second descriptor of
  // the same socket for the endpoint that replaces this one, and the socket
  // file handed over with it, so that stopping this one unlinks nothing.
  [[nodiscard]] base::UniqueFd duplicate_socket() const noexcept;
  [[nodiscard]] net::SocketFile take_socket_file() noexcept { return std::move(socket_file_); }
  [[nodiscard]] bool stopped() const noexcept {
    return !fd_ && !recv_in_flight_ && !send_in_flight_ && pipeline_.idle();
  }
  [[nodiscard]] const std::shared_ptr<const ListenerSettings>& settings() const noexcept { return settings_; }
  [[nodiscard]] const net::SocketAddress& address() const noexcept { return address_; }
  // Reply bytes held in memory now (the receive buffer is reused storage,
  // not held data).
  [[nodiscard]] std::size_t buffered_bytes() const noexcept { return out_.readable_size() + pipeline_.held_bytes(); }

  void on_io(std::uint8_t tag, std::int32_t result, std::uint32_t flags) override;

  // RequesterTarget: a deferred reply is sent, and only then is the next
  // datagram read.
  void deliver(const commands::ReplyRoute& route, proto::Reply& reply) override { pipeline_.deliver(route, reply); }
  void resume_body(const commands::ReplyRoute& route) override { pipeline_.resume_body(route); }

 private:
  enum Tag : std::uint8_t { kRecv = 1, kSend = 2 };

  // pipeline::FrameOutput: the output holds the one reply being answered.
  [[nodiscard]] buffer::ByteBuffer& frames() noexcept override { return out_; }
  [[nodiscard]] bool output_full() const noexcept override { return false; }
  [[nodiscard]] std::uint64_t frames_end() const noexcept override { return bytes_sent_ + out_.readable_size(); }
  void frames_ready() override { send_reply(); }
  void flush_frames() override {}

  void arm_recv();
  void on_datagram(std::size_t size, int msg_flags);
  void send_reply();
  void on_sent(std::int32_t result);
  void next();
  void close_if_idle();

  reactor::Reactor& reactor_;
  Owner& owner_;
  base::UniqueFd fd_;
  reactor::IoToken token_;
  std::shared_ptr<const ListenerSettings> settings_;
  net::SocketAddress address_;
  net::SocketFile socket_file_;
  std::uint64_t id_;
  std::size_t datagram_limit_;  // the largest datagram read whole
  bool answering_ = false;      // a datagram was read and its reply is not yet sent
  bool sending_error_ = false;  // the datagram in flight already replaces a reply too large
  bool stopping_ = false;
  bool recv_in_flight_ = false;
  bool send_in_flight_ = false;

  buffer::ByteBuffer in_;
  iovec recv_iov_{};
  msghdr recv_msg_{};
  sockaddr_storage sender_{};

  buffer::ByteBuffer out_;
  std::uint64_t bytes_sent_ = 0;
  iovec send_iov_{};
  msghdr send_msg_{};
  sockaddr_storage reply_to_{};
  socklen_t reply_to_length_ = 0;

  pipeline::RequestPipeline pipeline_;
};

}  // namespace framed::server
