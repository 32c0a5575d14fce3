#pragma once
// One reply or event header as framectl received it: the JSON text as the
// daemon wrote it (for --json, which prints it unchanged) and typed access
// to its fields. The header is copied and parsed with its own parser, so it
// stays valid while the body that follows is read.

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace framed::framectl {

class ReplyHead {
 public:
  // Copies and parses `header` (already checked by the frame decoder: a
  // JSON object with a valid total_size).
  void assign(std::string_view header);

  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  [[nodiscard]] simdjson::dom::object object() const noexcept { return object_; }

  [[nodiscard]] bool ok() const;
  // "message", "output", "dropped" for events; empty for a reply.
  [[nodiscard]] std::string_view event() const { return string_field("event").value_or(""); }
  [[nodiscard]] std::uint64_t body_size() const { return uint_field("total_size").value_or(0); }
  // error.code and error.message of an error reply ("internal" and a
  // generic text when the daemon sent none).
  [[nodiscard]] std::string error_code() const;
  [[nodiscard]] std::string error_message() const;

  [[nodiscard]] std::optional<std::string_view> string_field(std::string_view key) const;
  [[nodiscard]] std::optional<std::uint64_t> uint_field(std::string_view key) const;
  [[nodiscard]] std::optional<std::int64_t> int_field(std::string_view key) const;
  [[nodiscard]] std::optional<bool> bool_field(std::string_view key) const;

 private:
  std::string text_;
  simdjson::padded_string padded_;
  simdjson::dom::parser parser_;
  simdjson::dom::object object_;
};

}  // namespace framed::framectl
