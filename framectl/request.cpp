#include "request.hpp"

#include "codec/byte_order.hpp"
#include "codec/reply_encoder.hpp"
#include "failure.hpp"
#include "proto/json_writer.hpp"

namespace framed::framectl {
namespace {

// Requests of one framectl run carry ids 1, 2, …: one connection, replies in
// order, so the id only helps a person reading --json output.
std::uint64_t next_id() {
  static std::uint64_t id = 0;
  return ++id;
}

}  // namespace

JsonRequest::JsonRequest(std::string_view cmd) : cmd_(cmd) {}

void JsonRequest::begin_field(std::string_view key) {
  fields_.append(",");
  proto::append_json_string(fields_, key);
  fields_.append(":");
}

JsonRequest& JsonRequest::field(std::string_view key, std::string_view value) {
  begin_field(key);
  proto::append_json_string(fields_, value);
  return *this;
}

JsonRequest& JsonRequest::field(std::string_view key, std::uint64_t value) {
  begin_field(key);
  proto::append_json_uint(fields_, value);
  return *this;
}

JsonRequest& JsonRequest::field(std::string_view key, bool value) {
  begin_field(key);
  fields_.append(value ? "true" : "false");
  return *this;
}

JsonRequest& JsonRequest::args(const std::vector<std::string>& values) {
  begin_field("args");
  std::string array;
  proto::JsonWriter writer(array);
  writer.begin_array();
  for (const auto& value : values) writer.value(std::string_view(value));
  writer.end_array();
  fields_.append(array);
  return *this;
}

std::string JsonRequest::head(std::uint64_t body_size) const {
  std::string header = "{\"cmd\":";
  proto::append_json_string(header, cmd_);
  header.append(",\"id\":");
  proto::append_json_uint(header, next_id());
  if (body_size > 0) {
    header.append(",\"total_size\":");
    proto::append_json_uint(header, body_size);
  }
  header.append(fields_);
  header.append("}");
  std::string frame(4, '\0');  // the u32 header length, filled in below
  codec::store_u32(frame.data(), static_cast<std::uint32_t>(header.size()), codec::ByteOrder::big);
  frame.append(header);
  return frame;
}

std::string simple_frame(codec::Framing framing, std::string_view payload) {
  std::string frame;
  if (framing == codec::Framing::line) {
    if (payload.find('\n') != std::string_view::npos) {
      fail_usage("a line-framed request cannot hold a newline; use --framing length or json");
    }
    frame.append(payload);
    frame.append("\n");
    return frame;
  }
  char prefix[12];
  const std::size_t prefix_size = codec::encode_length_prefix(payload.size(), codec::ByteOrder::big, prefix);
  frame.append(prefix, prefix_size);
  frame.append(payload);
  return frame;
}

std::optional<SimpleError> simple_error(std::string_view reply) {
  if (!reply.starts_with("ERR ")) return std::nullopt;
  const std::string_view rest = reply.substr(4);
  const auto space = rest.find(' ');
  SimpleError error{std::string(rest.substr(0, space)),
                    std::string(space == std::string_view::npos ? std::string_view("(no message)") : rest.substr(space + 1))};
  while (!error.message.empty() && (error.message.back() == '\n' || error.message.back() == '\r')) {
    error.message.pop_back();
  }
  return error;
}

}  // namespace framed::framectl
