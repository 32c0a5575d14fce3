// The HTTP listener's request parser: arbitrary bytes, fed whole and in
// reads of a size the first byte chooses, give the same requests and the
// same error; parse() never claims more than it was given.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http/request_parser.hpp"

namespace {

using framed::http::RequestLimits;
using framed::http::RequestParser;

struct Outcome {
  std::vector<std::string> requests;  // method path version keep-alive body
  int error = 0;
  bool operator==(const Outcome&) const = default;
};

Outcome parse(std::string_view stream, std::size_t read_size) {
  RequestParser parser(RequestLimits{512, 16});
  Outcome outcome;
  std::string pending;
  std::size_t offset = 0;
  while (offset < stream.size()) {
    const std::size_t take = std::min(read_size, stream.size() - offset);
    pending.append(stream.substr(offset, take));
    offset += take;
    for (;;) {
      const RequestParser::Result result = parser.parse(pending);
      if (result.consumed > pending.size()) std::abort();
      pending.erase(0, result.consumed);
      if (result.status == RequestParser::Status::error) {
        outcome.error = parser.error_status();
        return outcome;
      }
      if (result.status == RequestParser::Status::incomplete) break;
      const auto& request = parser.request();
      outcome.requests.push_back(request.method_name + " " + request.path + " " +
                                 std::to_string(request.version_major) + "." + std::to_string(request.version_minor) +
                                 (request.keep_alive ? " keep" : " close") + (request.has_body ? " body" : ""));
      // This server answers and goes on only without a body (a body closes it).
      if (request.has_body) return outcome;
    }
  }
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t read_size = 1 + data[0] % 13;
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!(parse(stream, stream.size()) == parse(stream, read_size))) std::abort();
  return 0;
}
