#pragma once
// HTTP/1.1 response heads and bodies into a connection's output buffer.

#include <string_view>

#include "buffer/byte_buffer.hpp"

namespace framed::http {

struct Response {
  int status = 200;
  std::string_view content_type = "text/plain; charset=utf-8";
  std::string_view body;
  // HEAD: the same head (Content-Length of the body a GET would get), no body.
  bool head_only = false;
  bool keep_alive = true;
  // Sent with 405: the methods this server answers.
  bool allow_get_head = false;
};

[[nodiscard]] std::string_view reason_phrase(int status) noexcept;

void write_response(const Response& response, buffer::ByteBuffer& out);

}  // namespace framed::http
