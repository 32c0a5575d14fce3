#include "reply_head.hpp"

#include "failure.hpp"

namespace framed::framectl {

void ReplyHead::assign(std::string_view header) {
  text_.assign(header);
  padded_ = simdjson::padded_string(header);
  simdjson::dom::element root;
  if (parser_.parse(padded_).get(root) != simdjson::SUCCESS || root.get_object().get(object_) != simdjson::SUCCESS) {
    // The frame decoder parsed the same bytes already; this cannot happen
    // short of memory exhaustion.
    throw Failure(ExitStatus::connection, "protocol", "a reply header that is not a JSON object");
  }
}

bool ReplyHead::ok() const { return bool_field("ok").value_or(false); }

std::optional<std::string_view> ReplyHead::string_field(std::string_view key) const {
  std::string_view value;
  if (object_[key].get_string().get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::optional<std::uint64_t> ReplyHead::uint_field(std::string_view key) const {
  std::uint64_t value = 0;
  if (object_[key].get_uint64().get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::optional<std::int64_t> ReplyHead::int_field(std::string_view key) const {
  std::int64_t value = 0;
  if (object_[key].get_int64().get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::optional<bool> ReplyHead::bool_field(std::string_view key) const {
  bool value = false;
  if (object_[key].get_bool().get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::string ReplyHead::error_code() const {
  std::string_view code;
  if (object_["error"]["code"].get_string().get(code) != simdjson::SUCCESS || code.empty()) return "internal";
  return std::string(code);
}

std::string ReplyHead::error_message() const {
  std::string_view message;
  if (object_["error"]["message"].get_string().get(message) != simdjson::SUCCESS || message.empty()) {
    return "the daemon refused the request without saying why";
  }
  return std::string(message);
}

}  // namespace framed::framectl
