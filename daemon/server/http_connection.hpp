#pragma once
// One client of an http listener: a StreamTransport (bytes in and out,
// half-close, lingering, output bound) carrying HTTP/1.1 requests, parsed
// by http::RequestParser, answered at once on the reactor thread from the
// shard's counters: /metrics, /healthz, the status page.
//
// Keep-alive as HTTP/1.1 has it; pipelined requests are answered in order,
// one at a time, while the transport's output is below its bound. A request
// that breaks the stream (malformed, a head past max_header, a body) is
// answered and the connection closes after the answer.
//
// While the daemon drains, http connections keep answering (so /healthz can
// say 503 to a load balancer), each answer with "Connection: close".
//
// Reactor thread only.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/clock.hpp"
#include "base/unique_fd.hpp"
#include "http/request_parser.hpp"
#include "http/response.hpp"
#include "reactor/reactor.hpp"
#include "server/listener_settings.hpp"
#include "server/stats.hpp"
#include "server/stream_connection.hpp"
#include "transport/stream_transport.hpp"

namespace framed::server {

class HttpConnection final : public transport::StreamTransport::Handler {
 public:
  // What an http connection reports to and reads from (its shard).
  class Owner {
   public:
    // Its fd is closed; destroy it after this callback has returned.
    virtual void on_http_connection_closed(HttpConnection& connection) = 0;
    virtual void on_timeout(TimeoutKind kind) = 0;
    // Every reactor's counters for /metrics and the status page: at once
    // when they can be had at once (one reactor); otherwise nullopt, and the
    // owner calls stats_ready() on connection `id` later, if it is still
    // there.
    [[nodiscard]] virtual std::optional<StatsSnapshot> stats_for(std::uint64_t id) = 0;
    // The daemon is shutting down: /healthz answers 503.
    [[nodiscard]] virtual bool draining() const noexcept = 0;

   protected:
    ~Owner() = default;
  };

  // Its buffers are counted in `budget` (limits.max_buffered_total) like a
  // framed client's: while it is spent, a request that needs a larger
  // buffer waits for the shard's sweep to find room (retry_reading()).
  HttpConnection(reactor::Reactor& reactor, Owner& owner, base::UniqueFd fd,
                 std::shared_ptr<const ListenerSettings> listener, std::string peer, std::uint64_t id,
                 buffer::MemoryBudget& budget);

  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  void start() { transport_.start(); }
  // Closes now, dropping whatever is unsent.
  void abort() { transport_.close(); }
  // Called by the shard's periodic sweep.
  void check_timeouts(base::TimePoint now);

  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  [[nodiscard]] const std::string& peer() const noexcept { return peer_; }
  [[nodiscard]] bool budget_stalled() const noexcept { return transport_.budget_stalled(); }
  void retry_reading() { transport_.retry_reading(); }
  [[nodiscard]] TrafficStats& listener_stats() const noexcept { return *listener_->stats; }
  // Request and answer bytes held in memory for this client now.
  [[nodiscard]] std::size_t buffered_bytes() const noexcept { return transport_.buffered_bytes(); }
  // The counters a page was waiting for (Owner::stats_for).
  void stats_ready(const StatsSnapshot& stats);

 private:
  // transport::StreamTransport::Handler
  void on_input(std::size_t bytes) override;
  void on_peer_closed() override { pump(); }
  void on_sent(std::size_t bytes) override;
  void on_closed() override { owner_.on_http_connection_closed(*this); }

  // Answers what is buffered while the output has room, then sets reading
  // and finishing.
  void pump();
  void answer(const http::Request& request);
  // Answers with an error status and closes after it.
  void refuse(int status, std::string_view body);
  // The page waited for, from these counters.
  void answer_with(const StatsSnapshot& stats);
  // Writes `response` with body_ as its body.
  void send(http::Response& response);

  // A page made of the daemon's counters, waiting for them.
  enum class Page { none, metrics, status };

  reactor::Reactor& reactor_;
  Owner& owner_;
  std::shared_ptr<const ListenerSettings> listener_;
  std::string peer_;
  std::uint64_t id_;
  transport::StreamTransport transport_;
  http::RequestParser parser_;
  std::string body_;  // the answer being written; kept to reuse its memory
  bool done_ = false;  // the last answer is written: finish after it
  Page waiting_for_ = Page::none;
  http::Response waiting_response_;  // its status line and keep-alive, set when it was asked for
  base::TimePoint head_started_{};  // epoch: no request head in progress
};

}  // namespace framed::server
