#pragma once
// The bytes of a request. json framing: the u32 header length, then a header
// {"cmd":…,"id":…,"total_size":…, fields…}, written with proto's JSON
// writer (the daemon's escaping); the body follows separately, so a put
// streams it from its file. Simple mode: "COMMAND ARGS" in the length or
// line framing, or as one datagram.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/framing.hpp"

namespace framed::framectl {

class JsonRequest {
 public:
  explicit JsonRequest(std::string_view cmd);

  JsonRequest& field(std::string_view key, std::string_view value);
  JsonRequest& field(std::string_view key, std::uint64_t value);
  JsonRequest& field(std::string_view key, bool value);
  JsonRequest& args(const std::vector<std::string>& values);

  // The length prefix and the header, announcing a body of `body_size`
  // bytes (sent after it by the caller).
  [[nodiscard]] std::string head(std::uint64_t body_size) const;

 private:
  void begin_field(std::string_view key);

  std::string cmd_;
  std::string fields_;  // ",\"key\":value" pieces
};

// One simple-mode request in a stream framing (length or line). A line
// payload cannot hold a newline: that is a usage failure.
std::string simple_frame(codec::Framing framing, std::string_view payload);

// A simple-mode reply that is an error, "ERR CODE MESSAGE" (line endings
// dropped from the message). A command's output that itself starts so (an
// echo of "ERR x y") cannot be told apart: simple mode has no header.
struct SimpleError {
  std::string code;
  std::string message;
};
std::optional<SimpleError> simple_error(std::string_view reply);

}  // namespace framed::framectl
