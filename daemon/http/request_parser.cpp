#include "http/request_parser.hpp"

#include <algorithm>
#include <limits>

namespace framed::http {

// Returning non-zero from a callback stops the parser with an error; the
// callbacks do that only after fail() has chosen the status to answer.
const http_parser_settings& RequestParser::settings() {
  static const http_parser_settings table = [] {
    http_parser_settings s{};
    s.on_message_begin = &RequestParser::on_message_begin;
    s.on_url = &RequestParser::on_url;
    s.on_header_field = &RequestParser::on_header_field;
    s.on_header_value = &RequestParser::on_header_value;
    s.on_headers_complete = &RequestParser::on_headers_complete;
    s.on_message_complete = &RequestParser::on_message_complete;
    return s;
  }();
  return table;
}

RequestParser::RequestParser(const RequestLimits& limits) : limits_(limits) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

RequestParser::Result RequestParser::parse(std::string_view bytes) {
  if (error_status_ != 0) return {Status::error, 0};
  if (complete_) {
    // The previous request was taken: the next one starts afresh.
    complete_ = false;
    started_ = false;
    headers_complete_ = false;
    head_bytes_ = 0;
  }
  // While in a head, offer no more than one byte past its bound, so a head
  // that is too large is refused without the parser reading all of it.
  std::size_t offered = bytes.size();
  if (!headers_complete_) offered = std::min(offered, limits_.max_head_bytes + 1 - head_bytes_);
  const std::size_t parsed = http_parser_execute(&parser_, &settings(), bytes.data(), offered);
  const http_errno error = HTTP_PARSER_ERRNO(&parser_);

  if (error == HPE_PAUSED) {
    // Paused by on_message_complete: one whole request, nothing after it consumed.
    http_parser_pause(&parser_, 0);
    if (head_bytes_ + parsed > limits_.max_head_bytes) {
      fail(431);
      return {Status::error, parsed};
    }
    return {Status::request, parsed};
  }
  if (error != HPE_OK) {
    if (error_status_ == 0) fail(error == HPE_HEADER_OVERFLOW ? 431 : 400);
    return {Status::error, parsed};
  }
  if (started_ && !headers_complete_) {
    head_bytes_ += parsed;
    if (head_bytes_ > limits_.max_head_bytes) {
      fail(431);
      return {Status::error, parsed};
    }
  }
  return {Status::incomplete, parsed};
}

int RequestParser::on_message_begin(http_parser* parser) {
  RequestParser& self = RequestParser::self(parser);
  self.request_ = Request{};
  self.url_.clear();
  self.head_bytes_ = 0;
  self.headers_ = 0;
  self.in_field_ = false;
  self.started_ = true;
  return 0;
}

int RequestParser::on_url(http_parser* parser, const char* at, std::size_t length) {
  self(parser).url_.append(at, length);
  return 0;
}

int RequestParser::on_header_field(http_parser* parser, const char* /*at*/, std::size_t /*length*/) {
  RequestParser& self = RequestParser::self(parser);
  // A field's name may come in several pieces: count it at its first.
  if (!self.in_field_ && ++self.headers_ > self.limits_.max_headers) {
    self.fail(431);
    return 1;
  }
  self.in_field_ = true;
  return 0;
}

int RequestParser::on_header_value(http_parser* parser, const char* /*at*/, std::size_t /*length*/) {
  self(parser).in_field_ = false;
  return 0;
}

int RequestParser::on_headers_complete(http_parser* parser) {
  RequestParser& self = RequestParser::self(parser);
  Request& request = self.request_;
  self.headers_complete_ = true;
  if (parser->http_major != 1) {
    self.fail(505);
    return -1;
  }
  const auto method = static_cast<http_method>(parser->method);
  request.method = method == HTTP_GET ? Method::get : method == HTTP_HEAD ? Method::head : Method::other;
  request.method_name = http_method_str(method);
  request.version_major = parser->http_major;
  request.version_minor = parser->http_minor;
  request.keep_alive = http_should_keep_alive(parser) != 0 && parser->upgrade == 0;
  const bool chunked = (parser->flags & F_CHUNKED) != 0;
  const bool sized = parser->content_length > 0 && parser->content_length != std::numeric_limits<std::uint64_t>::max();
  request.has_body = chunked || sized;

  http_parser_url target;
  http_parser_url_init(&target);
  const bool is_connect = method == HTTP_CONNECT;
  if (http_parser_parse_url(self.url_.data(), self.url_.size(), is_connect ? 1 : 0, &target) == 0 &&
      (target.field_set & (1U << UF_PATH)) != 0) {
    request.path.assign(self.url_, target.field_data[UF_PATH].off, target.field_data[UF_PATH].len);
  } else {
    // assign(), not `= cond ? "*" : ""`: g++ 12 at -O3 warns (-Wrestrict,
    // a false positive) on the string assignment from a conditional literal.
    if (self.url_ == "*") {
      request.path.assign(1, '*');
    } else {
      request.path.clear();
    }
  }
  // No body is read: 1 tells the parser to skip it, and the connection,
  // which cannot know where the next request starts, closes after answering.
  if (request.has_body) {
    request.keep_alive = false;
    return 1;
  }
  return 0;
}

int RequestParser::on_message_complete(http_parser* parser) {
  RequestParser& self = RequestParser::self(parser);
  self.complete_ = true;
  http_parser_pause(parser, 1);
  return 0;
}

}  // namespace framed::http
