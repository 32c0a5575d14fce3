#pragma once
// Encoders: a Reply value into the bytes of one framing, appended to a
// connection's output buffer (so a pipelined batch of replies leaves in one
// send). PROTOCOL.md sections 1 and 2 define every byte written here.

#include <string>

#include "buffer/byte_buffer.hpp"
#include "codec/framing.hpp"
#include "proto/reply.hpp"

namespace framed::codec {

// Writes the `length` framing's prefix for a payload of `size` bytes into
// `out` and returns its length: 4, or 12 for the large form that Python's
// multiprocessing.connection expects from 2 GiB up (it reads a signed u32).
std::size_t encode_length_prefix(std::uint64_t size, ByteOrder order, char (&out)[12]) noexcept;

class ReplyEncoder {
 public:
  explicit ReplyEncoder(WireFormat format) noexcept : format_(format) {}

  // A whole reply: header and reply.body.
  void encode(const proto::Reply& reply, buffer::ByteBuffer& out);

  // A reply whose body of body_size bytes follows in pieces: encode_head
  // (the header, total_size = body_size; for `length` the prefix), then
  // encode_body_chunk for every piece, then encode_tail (the `line`
  // framing's newline). Stream framings only.
  void encode_head(const proto::Reply& reply, std::uint64_t body_size, buffer::ByteBuffer& out);
  void encode_body_chunk(std::string_view chunk, buffer::ByteBuffer& out) const;
  void encode_tail(buffer::ByteBuffer& out) const;

  // A frame that is not a reply (PROTOCOL.md section 4, events): json
  // framings get the header {fields..., "total_size": N} and the body; the
  // simple framings carry the body as their payload. `fields` is rendered
  // as Reply::fields is (",\"key\":value" pieces, at least one).
  void encode_event(std::string_view fields, std::string_view body, buffer::ByteBuffer& out);

  // The header JSON of a json-framed reply, exposed for tests.
  static void render_json_header(const proto::Reply& reply, std::string& out) {
    render_json_header(reply, reply.body.size(), out);
  }
  static void render_json_header(const proto::Reply& reply, std::uint64_t body_size, std::string& out);

 private:
  void encode_json(const proto::Reply& reply, buffer::ByteBuffer& out);
  void append_json_prefixed(std::string_view header, buffer::ByteBuffer& out, std::size_t body_size) const;
  void encode_length(std::string_view payload_head, std::string_view payload_body, buffer::ByteBuffer& out);
  static void encode_line(std::string_view payload_head, std::string_view payload_body, buffer::ByteBuffer& out);

  WireFormat format_;
  std::string scratch_;  // reused header / error-text storage
};

}  // namespace framed::codec
