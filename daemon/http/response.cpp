#include "http/response.hpp"

#include <fmt/format.h>

#include <ctime>
#include <iterator>

namespace framed::http {

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

void write_response(const Response& response, buffer::ByteBuffer& out) {
  // An origin server with a clock sends Date (RFC 9110, 6.6.1).
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  const std::size_t date_size = std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &utc);

  fmt::memory_buffer head;
  fmt::format_to(std::back_inserter(head),
                 "HTTP/1.1 {} {}\r\nServer: framed\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
                 "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: {}\r\n",
                 response.status, reason_phrase(response.status), std::string_view(date, date_size),
                 response.content_type, response.body.size(), response.keep_alive ? "keep-alive" : "close");
  if (response.allow_get_head) fmt::format_to(std::back_inserter(head), "Allow: GET, HEAD\r\n");
  fmt::format_to(std::back_inserter(head), "\r\n");
  out.append(std::string_view(head.data(), head.size()));
  if (!response.head_only) out.append(response.body);
}

}  // namespace framed::http
