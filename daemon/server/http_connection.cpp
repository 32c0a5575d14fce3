#include "server/http_connection.hpp"

#include <spdlog/spdlog.h>

#include "framed_build_config.hpp"
#include "http/response.hpp"
#include "http/status_page.hpp"
#include "server/metrics_text.hpp"

namespace framed::server {
namespace {

http::RequestLimits limits_of(const ListenerSettings& listener) {
  return http::RequestLimits{.max_head_bytes = static_cast<std::size_t>(listener.frame_limits.max_header)};
}

}  // namespace

HttpConnection::HttpConnection(reactor::Reactor& reactor, Owner& owner, base::UniqueFd fd,
                               std::shared_ptr<const ListenerSettings> listener, std::string peer, std::uint64_t id,
                               buffer::MemoryBudget& budget)
    : reactor_(reactor),
      owner_(owner),
      listener_(std::move(listener)),
      peer_(std::move(peer)),
      id_(id),
      transport_(reactor, std::move(fd), *this, transport::StreamTransportOptions{.budget = &budget}),
      parser_(limits_of(*listener_)) {}

void HttpConnection::on_input(std::size_t bytes) {
  listener_->stats->bytes_in += bytes;
  pump();
}

void HttpConnection::on_sent(std::size_t bytes) {
  listener_->stats->bytes_out += bytes;
  pump();
}

void HttpConnection::pump() {
  if (!transport_.open()) return;
  if (transport_.input_available()) {
    buffer::ByteBuffer& input = transport_.input();
    // One request at a time, while the answers fit under the output bound;
    // the rest waits in the input buffer (and reading pauses) until on_sent.
    while (!done_ && waiting_for_ == Page::none && !input.empty() && !transport_.output_full()) {
      const auto [status, consumed] = parser_.parse(input.readable());
      input.consume(consumed);
      if (status == http::RequestParser::Status::incomplete) break;
      if (status == http::RequestParser::Status::error) {
        const int code = parser_.error_status();
        refuse(code, code == 431   ? "request line and headers too large\n"
                     : code == 505 ? "only HTTP/1.0 and HTTP/1.1 are served here\n"
                                   : "malformed request\n");
        break;
      }
      answer(parser_.request());
    }
    if (parser_.in_head()) {
      if (head_started_ == base::TimePoint{}) head_started_ = reactor_.now();
    } else {
      head_started_ = {};
    }
  }
  transport_.flush();
  if (done_ || transport_.peer_closed()) {
    transport_.stop_reading();
    transport_.finish();
  } else if (transport_.output_full() || waiting_for_ != Page::none) {
    transport_.pause_reading();
  } else {
    transport_.resume_reading();
  }
}

void HttpConnection::answer(const http::Request& request) {
  ++listener_->stats->frames_in;
  http::Response response;
  response.head_only = request.method == http::Method::head;
  response.keep_alive = request.keep_alive && !owner_.draining();
  body_.clear();
  if (request.method == http::Method::other) {
    // A body we did not read leaves no known start for the next request.
    response.status = 405;
    response.allow_get_head = true;
    response.head_only = false;
    body_ = "only GET and HEAD are served here\n";
  } else if (request.has_body) {
    response.status = 413;
    body_ = "a GET or HEAD request takes no body\n";
  } else if (request.path == "/metrics" || request.path == "/") {
    // The counters of every reactor: with several, they come back later
    // (stats_ready), and the requests behind this one wait for them.
    waiting_for_ = request.path == "/metrics" ? Page::metrics : Page::status;
    waiting_response_ = response;
    if (std::optional<StatsSnapshot> stats = owner_.stats_for(id_)) answer_with(*stats);
    return;
  } else if (request.path == "/healthz") {
    const bool draining = owner_.draining();
    response.status = draining ? 503 : 200;
    body_ = draining ? "draining\n" : "ok\n";
  } else {
    response.status = 404;
    body_ = "not found; try /, /metrics or /healthz\n";
  }
  send(response);
}

void HttpConnection::stats_ready(const StatsSnapshot& stats) {
  if (waiting_for_ == Page::none || !transport_.open()) return;
  answer_with(stats);
  pump();
}

void HttpConnection::answer_with(const StatsSnapshot& stats) {
  http::Response response = waiting_response_;
  body_.clear();
  if (waiting_for_ == Page::metrics) {
    render_metrics(stats, FRAMED_VERSION, body_);
    response.content_type = kMetricsContentType;
  } else {
    render_status_page(stats, http::StatusPageContext{FRAMED_VERSION, owner_.draining()}, body_);
    response.content_type = "text/html; charset=utf-8";
  }
  waiting_for_ = Page::none;
  send(response);
}

void HttpConnection::send(http::Response& response) {
  response.body = body_;
  http::write_response(response, transport_.output());
  ++listener_->stats->replies_out;
  if (!response.keep_alive) done_ = true;
}

void HttpConnection::refuse(int status, std::string_view body) {
  SPDLOG_DEBUG("http connection {} from {}: answering {} and closing", id_, peer_, status);
  http::write_response(http::Response{.status = status, .body = body, .keep_alive = false}, transport_.output());
  ++listener_->stats->replies_out;
  done_ = true;
}

void HttpConnection::check_timeouts(base::TimePoint now) {
  switch (transport_.state()) {
    case transport::StreamTransport::State::closing: return;
    case transport::StreamTransport::State::lingering: return transport_.check_linger(now);
    case transport::StreamTransport::State::open: break;
  }
  if (head_started_ != base::TimePoint{} && now - head_started_ >= listener_->header_timeout && !done_) {
    owner_.on_timeout(TimeoutKind::header);
    head_started_ = {};
    refuse(408, "request headers not completed within header_timeout\n");
    pump();
    return;
  }
  if (now - transport_.last_activity() >= listener_->idle_timeout) {
    owner_.on_timeout(TimeoutKind::idle);
    transport_.close();
  }
}

}  // namespace framed::server
