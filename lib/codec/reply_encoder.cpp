#include "codec/reply_encoder.hpp"

#include <cstring>

namespace framed::codec {
namespace {

// Python's multiprocessing.connection reads the u32 as a signed int, so any
// payload from 2 GiB up uses its large form: 0xFFFFFFFF, then a u64.
constexpr std::uint64_t kLargeLengthThreshold = 0x80000000ULL;
constexpr std::uint32_t kLargeLengthMarker = 0xFFFFFFFFU;

void append_escaped_line(std::string_view text, buffer::ByteBuffer& out) {
  std::size_t run_start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '\\' && c != '\n' && c != '\r') continue;
    out.append(text.substr(run_start, i - run_start));
    out.append(c == '\\' ? std::string_view("\\\\") : c == '\n' ? std::string_view("\\n") : std::string_view("\\r"));
    run_start = i + 1;
  }
  out.append(text.substr(run_start));
}

}  // namespace

std::size_t encode_length_prefix(std::uint64_t size, ByteOrder order, char (&out)[12]) noexcept {
  if (size >= kLargeLengthThreshold) {
    store_u32(out, kLargeLengthMarker, order);
    store_u64(out + 4, size, order);
    return 12;
  }
  store_u32(out, static_cast<std::uint32_t>(size), order);
  return 4;
}

void ReplyEncoder::render_json_header(const proto::Reply& reply, std::uint64_t body_size, std::string& out) {
  out.push_back('{');
  if (!reply.id_json.empty()) {
    out.append("\"id\":");
    out.append(reply.id_json);
    out.push_back(',');
  }
  if (reply.ok) {
    out.append("\"ok\":true");
  } else {
    out.append("\"ok\":false,\"error\":{\"code\":\"");
    out.append(proto::to_string(reply.error_code));
    out.append("\",\"message\":");
    proto::append_json_string(out, reply.error_message);
    out.push_back('}');
  }
  if (body_size != 0) {
    out.append(",\"total_size\":");
    proto::append_json_uint(out, body_size);
  }
  out.append(reply.fields);
  out.push_back('}');
}

void ReplyEncoder::encode(const proto::Reply& reply, buffer::ByteBuffer& out) {
  if (format_.json_replies()) {
    encode_json(reply, out);
    return;
  }
  // Simple mode: the payload is the output, or "ERR <code> <message>".
  std::string_view head;
  std::string_view body = reply.body;
  if (!reply.ok) {
    scratch_.assign("ERR ");
    scratch_.append(proto::to_string(reply.error_code));
    scratch_.push_back(' ');
    scratch_.append(reply.error_message);
    head = scratch_;
    body = {};
  }
  if (format_.length_prefixed_replies()) return encode_length(head, body, out);
  switch (format_.framing) {
    case Framing::line: return encode_line(head, body, out);
    case Framing::length:  // length_prefixed_replies
    case Framing::json:    // json_replies
    case Framing::datagram:
    case Framing::raw:
      out.append(head);
      out.append(body);
      return;
  }
}

void ReplyEncoder::encode_head(const proto::Reply& reply, std::uint64_t body_size, buffer::ByteBuffer& out) {
  if (format_.json_replies()) {
    scratch_.clear();
    render_json_header(reply, body_size, scratch_);
    return append_json_prefixed(scratch_, out, 0);
  }
  if (format_.length_prefixed_replies()) {
    char prefix[12];
    out.append(std::string_view(prefix, encode_length_prefix(body_size, format_.byte_order, prefix)));
  }
}

void ReplyEncoder::encode_body_chunk(std::string_view chunk, buffer::ByteBuffer& out) const {
  if (format_.framing == Framing::line) return append_escaped_line(chunk, out);
  out.append(chunk);
}

void ReplyEncoder::encode_tail(buffer::ByteBuffer& out) const {
  if (format_.framing == Framing::line) out.append('\n');
}

void ReplyEncoder::encode_event(std::string_view fields, std::string_view body, buffer::ByteBuffer& out) {
  if (!format_.json_replies()) {
    proto::Reply payload;
    payload.body = body;
    return encode(payload, out);
  }
  scratch_.clear();
  scratch_.push_back('{');
  if (!fields.empty()) scratch_.append(fields.data() + 1, fields.size() - 1);  // drop the leading comma
  if (!body.empty()) {
    scratch_.append(",\"total_size\":");
    proto::append_json_uint(scratch_, body.size());
  }
  scratch_.push_back('}');
  append_json_prefixed(scratch_, out, body.size());
  out.append(body);
}

void ReplyEncoder::append_json_prefixed(std::string_view header, buffer::ByteBuffer& out,
                                        std::size_t body_size) const {
  out.ensure_writable(4 + header.size() + body_size);
  char prefix[4];
  store_u32(prefix, static_cast<std::uint32_t>(header.size()), format_.byte_order);
  out.append(std::string_view(prefix, sizeof prefix));
  out.append(header);
}

void ReplyEncoder::encode_json(const proto::Reply& reply, buffer::ByteBuffer& out) {
  scratch_.clear();
  render_json_header(reply, scratch_);
  append_json_prefixed(scratch_, out, reply.body.size());
  out.append(reply.body);
}

void ReplyEncoder::encode_length(std::string_view payload_head, std::string_view payload_body,
                                 buffer::ByteBuffer& out) {
  const std::uint64_t size = payload_head.size() + payload_body.size();
  out.ensure_writable(12 + size);
  char prefix[12];
  out.append(std::string_view(prefix, encode_length_prefix(size, format_.byte_order, prefix)));
  out.append(payload_head);
  out.append(payload_body);
}

void ReplyEncoder::encode_line(std::string_view payload_head, std::string_view payload_body,
                               buffer::ByteBuffer& out) {
  append_escaped_line(payload_head, out);
  append_escaped_line(payload_body, out);
  out.append('\n');
}

}  // namespace framed::codec
