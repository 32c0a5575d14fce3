#pragma once
// HTTP/1.x requests out of a byte stream, one at a time, with the nodejs
// http-parser (Debian's libhttp-parser-dev) doing the grammar. This class
// adds what a small status server needs on top: a bound on the request line
// and headers together (bytes and count; past either: 431), the path of the
// target, whether the connection stays open, and whether a body follows.
//
// parse() stops after each complete request, so a connection answers
// pipelined requests one by one and can stop in between (output full,
// draining). Bytes are fed as they arrive; any split gives the same result.
//
// Reactor thread only; one parser per connection.

#include <http_parser.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace framed::http {

enum class Method : std::uint8_t { get, head, other };

struct Request {
  Method method = Method::other;
  std::string method_name;  // as sent ("GET", "POST", ...)
  std::string path;         // the target's path, without query or fragment
  unsigned version_major = 1;
  unsigned version_minor = 1;
  // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
  // "Connection: keep-alive".
  bool keep_alive = true;
  // Content-Length above 0 or chunked: this server takes no request bodies.
  bool has_body = false;
};

struct RequestLimits {
  std::size_t max_head_bytes = 65536;  // request line and headers together
  std::size_t max_headers = 100;       // header fields
};

class RequestParser {
 public:
  enum class Status : std::uint8_t {
    incomplete,  // everything given was consumed; more is needed
    request,     // request() is complete; the bytes after it are not consumed
    error,       // error_status() says which; the stream is unusable after it
  };
  struct Result {
    Status status = Status::incomplete;
    std::size_t consumed = 0;
  };

  explicit RequestParser(const RequestLimits& limits);

  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  Result parse(std::string_view bytes);

  [[nodiscard]] const Request& request() const noexcept { return request_; }
  // 400 (malformed), 431 (request line and headers too large or too many)
  // or 505 (an HTTP version other than 1.x).
  [[nodiscard]] int error_status() const noexcept { return error_status_; }
  // A request has begun and its headers are not complete (header_timeout).
  [[nodiscard]] bool in_head() const noexcept { return started_ && !headers_complete_; }

 private:
  static int on_message_begin(http_parser* parser);
  static int on_url(http_parser* parser, const char* at, std::size_t length);
  static int on_header_field(http_parser* parser, const char* at, std::size_t length);
  static int on_header_value(http_parser* parser, const char* at, std::size_t length);
  static int on_headers_complete(http_parser* parser);
  static int on_message_complete(http_parser* parser);
  static const http_parser_settings& settings();
  static RequestParser& self(http_parser* parser) { return *static_cast<RequestParser*>(parser->data); }

  void fail(int status) noexcept { error_status_ = status; }

  RequestLimits limits_;
  http_parser parser_{};
  Request request_;
  std::string url_;
  std::size_t head_bytes_ = 0;  // of the request in progress, while in its head
  std::size_t headers_ = 0;
  bool in_field_ = false;
  bool started_ = false;
  bool headers_complete_ = false;
  bool complete_ = false;
  int error_status_ = 0;
};

}  // namespace framed::http
