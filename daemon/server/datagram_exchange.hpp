#pragma once
// One datagram's request and its reply, on a datagram endpoint: the
// datagram's bytes, its own RequestPipeline and output, and the sender the
// reply goes back to. Each exchange is a requester of its own, so a command
// that defers (exec, a file job) holds up its own sender's reply only, never
// the endpoint: the endpoint keeps reading and answering other datagrams
// meanwhile, with up to the listener's max_pending_replies exchanges busy.
//
// Life: free → take() (the datagram is copied in and processed) → ready
// (the reply is complete: at once, or when a deferred command answers; the
// owner is told) → the owner sends it → sent() → free again, reused.
//
// Reactor thread only.

#include <simdjson.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "buffer/byte_buffer.hpp"
#include "pipeline/dispatcher.hpp"
#include "pipeline/request_pipeline.hpp"
#include "server/listener_settings.hpp"
#include "server/requester_target.hpp"

namespace framed::server {

class DatagramExchange final : public pipeline::FrameOutput, public RequesterTarget {
 public:
  class Owner {
   public:
    // Registers the exchange for deferred replies; returns its requester id.
    [[nodiscard]] virtual std::uint64_t add_requester(RequesterTarget& target) = 0;
    virtual void remove_requester(std::uint64_t id) = 0;
    // Its reply became complete after take() returned (a deferred command
    // answered): it may be sent now.
    virtual void on_exchange_ready(DatagramExchange& exchange) = 0;

   protected:
    ~Owner() = default;
  };

  DatagramExchange(Owner& owner, pipeline::Dispatcher& dispatcher, simdjson::dom::parser& parser,
                   const ListenerSettings& settings, std::size_t datagram_limit);
  ~DatagramExchange();

  DatagramExchange(const DatagramExchange&) = delete;
  DatagramExchange& operator=(const DatagramExchange&) = delete;

  // Answers one datagram from `sender`. The bytes are copied: the endpoint
  // reuses its receive buffer at once. Returns ready().
  bool take(std::string_view datagram, bool truncated, const sockaddr_storage& sender, socklen_t sender_length);
  // The reply is complete (it may be empty: upper of an empty datagram).
  [[nodiscard]] bool ready() const noexcept { return busy_ && pipeline_.idle(); }
  [[nodiscard]] bool busy() const noexcept { return busy_; }

  // For the send: the reply's bytes and its destination.
  [[nodiscard]] const buffer::ByteBuffer& reply() const noexcept { return out_; }
  [[nodiscard]] const sockaddr_storage& sender() const noexcept { return sender_; }
  [[nodiscard]] socklen_t sender_length() const noexcept { return sender_length_; }
  // An unnamed Unix sender (it never bound an address) cannot be answered.
  [[nodiscard]] bool answerable() const noexcept {
    return !(sender_length_ <= sizeof(sa_family_t) && sender_.ss_family == AF_UNIX);
  }
  // The reply, when it is an error (for the endpoint's log); null otherwise.
  [[nodiscard]] const proto::Reply* error() const noexcept { return pipeline_.last_error(); }
  // The socket refused the reply as too large (EMSGSIZE): it becomes a
  // frame_too_large error, to be sent instead.
  void replace_reply_too_large();
  // The reply has left (or could not be sent): the exchange is free.
  void sent();

  // Reply bytes held now.
  [[nodiscard]] std::size_t buffered_bytes() const noexcept { return out_.readable_size() + pipeline_.held_bytes(); }

  // RequesterTarget
  void deliver(const commands::ReplyRoute& route, proto::Reply& reply) override { pipeline_.deliver(route, reply); }
  void resume_body(const commands::ReplyRoute& route) override { pipeline_.resume_body(route); }

 private:
  // pipeline::FrameOutput: the output holds this datagram's reply.
  [[nodiscard]] buffer::ByteBuffer& frames() noexcept override { return out_; }
  [[nodiscard]] bool output_full() const noexcept override { return false; }
  [[nodiscard]] std::uint64_t frames_end() const noexcept override { return bytes_done_ + out_.readable_size(); }
  void frames_ready() override;
  void flush_frames() override {}

  Owner& owner_;
  std::uint64_t id_;
  bool busy_ = false;
  bool taking_ = false;  // inside take(): a reply completed now is take()'s to report
  buffer::ByteBuffer in_;
  buffer::ByteBuffer out_;
  std::uint64_t bytes_done_ = 0;  // reply bytes of earlier datagrams (the pipeline's stream offset)
  sockaddr_storage sender_{};
  socklen_t sender_length_ = 0;
  pipeline::RequestPipeline pipeline_;
};

}  // namespace framed::server
