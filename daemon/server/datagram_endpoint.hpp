#pragma once
// A datagram socket (UDP or Unix datagram): one datagram in, one datagram
// back to its sender. Each datagram holds one whole message (a json frame or
// a simple-mode payload, per the listener's `payload`), answered through the
// same RequestPipeline as a stream connection, so every transport answers
// alike. There is no reassembly and no connection state; garbage gets an
// error datagram and never disturbs other senders.
//
// Each datagram is answered by a DatagramExchange of its own, so a command
// that takes a while (exec, a file job) holds up only its own sender: the
// endpoint goes on reading and answering, with up to max_pending_replies
// datagrams being answered at once; past that it stops reading, and the
// socket's own receive queue is the bounded buffer (under overload the
// kernel drops datagrams, which is UDP's contract with its clients). Replies
// leave as they become ready, one send at a time; datagrams carry no order.

#include <simdjson.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <deque>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"
#include "buffer/byte_buffer.hpp"
#include "net/socket_address.hpp"
#include "net/socket_file.hpp"
#include "pipeline/dispatcher.hpp"
#include "pipeline/request_pipeline.hpp"
#include "reactor/reactor.hpp"
#include "server/datagram_exchange.hpp"
#include "server/listener_settings.hpp"
#include "server/requester_target.hpp"

namespace framed::server {

class DatagramEndpoint final : public reactor::IoHandler, public DatagramExchange::Owner {
 public:
  // What an endpoint reports to (its shard).
  class Owner {
   public:
    // Registers an exchange for deferred replies; returns its requester id.
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
    return !fd_ && !recv_in_flight_ && !send_in_flight_ && free_.size() == exchanges_.size();
  }
  [[nodiscard]] const std::shared_ptr<const ListenerSettings>& settings() const noexcept { return settings_; }
  [[nodiscard]] const net::SocketAddress& address() const noexcept { return address_; }
  // Reply bytes held in memory now (the receive buffers are reused storage,
  // not held data).
  [[nodiscard]] std::size_t buffered_bytes() const noexcept;

  void on_io(std::uint8_t tag, std::int32_t result, std::uint32_t flags) override;
  // The datagram being taken ran out of memory: it is dropped (as the
  // network may drop any), and the next one is read.
  void on_allocation_failure() noexcept override {
    try {
      arm_recv();
    } catch (const std::bad_alloc&) {
      // Nothing more to do here; a reply leaving calls arm_recv again.
    }
  }

  // DatagramExchange::Owner
  [[nodiscard]] std::uint64_t add_requester(RequesterTarget& target) override { return owner_.add_requester(target); }
  void remove_requester(std::uint64_t id) override { owner_.remove_requester(id); }
  void on_exchange_ready(DatagramExchange& exchange) override;

 private:
  enum Tag : std::uint8_t { kRecv = 1, kSend = 2 };

  void arm_recv();
  void on_datagram(std::size_t size, int msg_flags);
  // Exchanges this endpoint may have: the listener's max_pending_replies.
  [[nodiscard]] std::size_t capacity() const noexcept;
  // A free exchange (made while fewer than capacity() exist), or null when
  // every one is busy.
  [[nodiscard]] DatagramExchange* free_exchange();
  // A complete reply joins the send queue (or, unanswerable, is dropped).
  void queue_reply(DatagramExchange& exchange);
  void send_next();
  void on_sent(std::int32_t result);
  void release(DatagramExchange& exchange);
  void close_if_idle();

  reactor::Reactor& reactor_;
  Owner& owner_;
  base::UniqueFd fd_;
  reactor::IoToken token_;
  std::shared_ptr<const ListenerSettings> settings_;
  net::SocketAddress address_;
  net::SocketFile socket_file_;
  pipeline::Dispatcher& dispatcher_;
  simdjson::dom::parser& parser_;
  std::size_t datagram_limit_;  // the largest datagram read whole
  bool sending_error_ = false;  // the datagram in flight already replaces a reply too large
  bool stopping_ = false;
  bool recv_in_flight_ = false;
  bool send_in_flight_ = false;

  buffer::ByteBuffer in_;
  iovec recv_iov_{};
  msghdr recv_msg_{};
  sockaddr_storage sender_{};

  // Made as needed, up to max_pending_replies, and reused: `free_` holds the
  // idle ones, `to_send_` the complete replies in the order they completed.
  std::vector<std::unique_ptr<DatagramExchange>> exchanges_;
  std::vector<DatagramExchange*> free_;
  std::deque<DatagramExchange*> to_send_;
  iovec send_iov_{};
  msghdr send_msg_{};
};

}  // namespace framed::server
