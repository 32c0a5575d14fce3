#pragma once
// Encoders: a Reply value into the bytes of one framing, appended to a
// connection's output buffer (so a pipelined batch of replies leaves in one
// send). PROTOCOL.md sections 1 and 2 define every byte written here.

#include <string>

#include "buffer/byte_buffer.hpp"
#include "codec/byte_order.hpp"
#include "proto/reply.hpp"

namespace framed::codec {

// What a listener speaks, as the encoders and decoders see it. Not named
// WireFormat: that name is codec/framing.hpp's struct, which the config
// already speaks and which this enum is to give way to.
enum class FrameFormat : std::uint8_t {
  json,           // u32 H · JSON header · body
  length,         // u32 L · payload (simple mode)
  line,           // payload · \n (simple mode, replies escaped to one line)
  datagram_text,  // one datagram = one simple-mode payload
  datagram_json,  // one datagram = one json frame
};

[[nodiscard]] constexpr bool is_simple_mode(FrameFormat format) noexcept {
  return format == FrameFormat::length || format == FrameFormat::line || format == FrameFormat::datagram_text;
}

// Writes the `length` framing's prefix for a payload of `size` bytes into
// `out` and returns its length: 4, or 12 for the large form that Python's
// multiprocessing.connection expects from 2 GiB up (it reads a signed u32).
std::size_t encode_length_prefix(std::uint64_t size, ByteOrder order, char (&out)[12]) noexcept;

class ReplyEncoder {
 public:
  ReplyEncoder(FrameFormat format, ByteOrder order) noexcept : format_(format), order_(order) {}

  void encode(const proto::Reply& reply, buffer::ByteBuffer& out);

  // The header JSON of a json-framed reply, exposed for tests.
  static void render_json_header(const proto::Reply& reply, std::string& out);

 private:
  void encode_json(const proto::Reply& reply, buffer::ByteBuffer& out);
  void encode_length(std::string_view payload_head, std::string_view payload_body, buffer::ByteBuffer& out);
  static void encode_line(std::string_view payload_head, std::string_view payload_body, buffer::ByteBuffer& out);

  FrameFormat format_;
  ByteOrder order_;
  std::string scratch_;  // reused header / error-text storage
};

}  // namespace framed::codec
