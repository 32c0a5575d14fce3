#pragma once
// One client on a stream socket (TCP or Unix): a StreamTransport (bytes in
// and out, half-close, lingering, output bound) carrying a RequestPipeline
// (frames, order, commands, replies, events). This class only joins the two
// and keeps the connection's timeouts.
//
// Life: open (reading and answering) → draining (no more reading: the peer
// shut down its side, a protocol error, or the daemon is stopping; what was
// received is answered and flushed) → the transport finishes (shuts its
// write side, lingers) and closes.
//
// Reactor thread only.

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string>

#include "auth/client_session.hpp"
#include "base/clock.hpp"
#include "base/unique_fd.hpp"
#include "exec/peer_credentials.hpp"
#include "pipeline/dispatcher.hpp"
#include "pipeline/request_pipeline.hpp"
#include "pubsub/channel_table.hpp"
#include "reactor/reactor.hpp"
#include "server/listener_settings.hpp"
#include "server/requester_target.hpp"
#include "transport/stream_transport.hpp"

namespace framed::server {

enum class TimeoutKind : std::uint8_t { idle, header, body };

class StreamConnection final : public transport::StreamTransport::Handler,
                               public pipeline::FrameOutput,
                               public RequesterTarget,
                               public pubsub::Subscriber {
 public:
  // What a connection reports to (its shard).
  class Owner {
   public:
    // Its fd is closed; destroy it after this callback has returned.
    virtual void on_connection_closed(StreamConnection& connection) = 0;
    virtual void on_timeout(TimeoutKind kind) = 0;
    // Its unsent events passed max_event_backlog: it has been sent the
    // `dropped` event and is closing (once per connection).
    virtual void on_slow_consumer(StreamConnection& connection) = 0;
    // Events were queued on it: call flush_events() once the work of this
    // loop iteration is done (at most once per iteration per connection).
    virtual void flush_soon(StreamConnection& connection) = 0;

   protected:
    ~Owner() = default;
  };

  StreamConnection(reactor::Reactor& reactor, Owner& owner, pipeline::Dispatcher& dispatcher,
                   simdjson::dom::parser& parser, base::UniqueFd fd, std::shared_ptr<const ListenerSettings> listener,
                   std::string peer, std::uint64_t id, buffer::MemoryBudget& budget);

  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;

  void start() { transport_.start(); }
  // The daemon is stopping: read what the kernel had already received for
  // this connection (its bytes had reached the daemon's socket), answer it
  // and everything buffered, then close.
  void begin_drain();
  // Closes now, dropping whatever is unsent (shutdown deadline).
  void abort() { transport_.close(); }
  // Called by the shard's periodic sweep.
  void check_timeouts(base::TimePoint now);
  // The memory budget: whether reading stopped for want of it, trying
  // again once it has room, and shedding this connection when it must give
  // its memory back (a too_busy error, then the close).
  [[nodiscard]] bool budget_stalled() const noexcept { return transport_.budget_stalled(); }
  void retry_reading() { transport_.retry_reading(); }
  void shed_for_memory();
  // Its output is at the transport's bound: the client is not reading.
  [[nodiscard]] bool replies_unread() const noexcept { return transport_.output_full(); }
  // Memory this connection's buffers take (counted in the budget).
  [[nodiscard]] std::size_t allocated_bytes() const noexcept { return transport_.allocated_bytes(); }

  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  [[nodiscard]] const std::string& peer() const noexcept { return peer_; }
  [[nodiscard]] const std::string& listener_name() const noexcept { return listener_->name; }
  [[nodiscard]] TrafficStats& listener_stats() const noexcept { return *listener_->stats; }
  [[nodiscard]] bool open() const noexcept { return transport_.open(); }
  // A TLS listener's connection: who the client's certificate says it is
  // (verified against tls_client_ca); null on a plain connection, empty
  // while the handshake is under way or when no certificate is required.
  [[nodiscard]] const transport::TlsPeerIdentity* tls_peer() const noexcept { return transport_.tls_peer(); }
  // Request and reply bytes held in memory for this client now.
  [[nodiscard]] std::size_t buffered_bytes() const noexcept {
    return transport_.buffered_bytes() + pipeline_.held_bytes();
  }

  // pubsub::Subscriber: events (pub/sub, exec output) for this client;
  // false: it is too slow (or was already), and is closing.
  [[nodiscard]] codec::WireFormat event_format() const noexcept override { return listener_->format; }
  bool push_event(const pipeline::SharedFrame& frame) override;
  // Sends the events queued since flush_soon() (see flush_frames()).
  void flush_events() {
    flush_queued_ = false;
    transport_.flush();
  }

  // RequesterTarget
  void deliver(const commands::ReplyRoute& route, proto::Reply& reply) override;
  void resume_body(const commands::ReplyRoute& route) override;

 private:
  // Runs `step` on the pipeline from outside the connection's own
  // callbacks (a worker's result, a publish). A std::bad_alloc in it closes
  // the connection, which could no longer answer in order (the reply or
  // event it was keeping is lost), and goes on up to whoever counts it.
  template <typename Step>
  decltype(auto) closing_on_allocation_failure(Step&& step) {
    try {
      return step();
    } catch (const std::bad_alloc&) {
      transport_.close();
      throw;
    }
  }

  // transport::StreamTransport::Handler
  void on_input(std::size_t bytes) override;
  void on_peer_closed() override;
  void on_sent(std::size_t bytes) override;
  void on_closed() override;

  // pipeline::FrameOutput
  [[nodiscard]] buffer::ByteBuffer& frames() noexcept override { return transport_.output(); }
  [[nodiscard]] bool output_full() const noexcept override { return transport_.output_full(); }
  [[nodiscard]] std::uint64_t frames_end() const noexcept override {
    return transport_.bytes_sent() + transport_.unsent_bytes();
  }
  void frames_ready() override { pump(); }
  // Events leave once per loop iteration, not one send each: a fan-out (or
  // several publishes read together) pushing many events to this connection
  // in one turn writes them with one send. They are in the output already,
  // in order with the replies; only the send waits.
  void flush_frames() override {
    if (flush_queued_) return;
    flush_queued_ = true;
    owner_.flush_soon(*this);
  }

  // TLS: counts the handshake once its outcome is known (done, failed, or
  // the connection closed before it completed).
  void count_handshake(bool closed);

  // Decodes what is buffered (when the pipeline may take it), sends, and sets
  // reading and finishing by what the pipeline says.
  void pump();

  // Starts, stops or freezes the body deadline by what the pipeline says.
  void track_body(std::string_view input);
  void track_body_held(base::TimePoint now);

  reactor::Reactor& reactor_;
  Owner& owner_;
  std::shared_ptr<const ListenerSettings> listener_;
  std::string peer_;
  std::uint64_t id_;
  // Unix stream peers only: who connected (exec's allow_uids/allow_gids).
  std::optional<exec::PeerCredentials> peer_credentials_;
  // Who the client is (auth, principals); before the pipeline, which points at it.
  auth::ClientSession session_;
  transport::StreamTransport transport_;
  pipeline::RequestPipeline pipeline_;
  bool draining_ = false;
  // Shutdown: bytes that were in the socket's receive queue when the drain
  // began and are still to be read (and answered) before reading stops.
  std::size_t drain_unread_ = 0;
  bool drain_count_next_read_ = true;  // false: the recv in flight at the drain's start comes next
  bool flush_queued_ = false;  // flush_soon() asked, flush_events() not run yet
  base::TimePoint header_started_{};  // epoch: no header in progress
  // TLS: when the handshake began (accept), bounded by header_timeout, and
  // whether its outcome was counted.
  base::TimePoint accepted_at_{};
  bool handshake_counted_ = false;
  // body_timeout: the deadline of the body in progress (epoch: none), which
  // frame it belongs to, the bytes received toward its next second
  // (min_body_rate), and since when the daemon itself has held the body back
  // (a sink behind, a full output: time that is not the client's).
  base::TimePoint body_deadline_{};
  std::uint64_t body_frame_ = 0;
  std::uint64_t body_credit_ = 0;
  base::TimePoint body_held_since_{};
};

}  // namespace framed::server
