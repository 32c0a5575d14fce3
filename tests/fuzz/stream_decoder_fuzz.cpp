// The stream framings (json, length, line, raw) against arbitrary bytes.
// The first two bytes choose the framing, byte order, limits and how the
// rest is cut into reads; the rest is the stream. Checked, besides the
// sanitizers' own findings:
//   - every frame's size is within what was buffered and not zero;
//   - the request parsers take every frame;
//   - json, length and line give the same frames and the same error whether
//     the stream arrives whole or cut into reads (the "sticky packet"
//     property: how TCP splits or glues the bytes never changes a message).

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/byte_buffer.hpp"
#include "codec/stream_decoder.hpp"
#include "proto/request.hpp"

namespace {

using namespace framed;

struct Outcome {
  std::vector<std::string> frames;  // header + '|' + body, as decoded
  std::optional<proto::ErrorCode> error;
  bool over_limit = false;  // a body announced above max_body: the pipeline refuses it
  bool operator==(const Outcome&) const = default;
};

void require(bool condition) {
  if (!condition) std::abort();
}

Outcome decode(codec::WireFormat format, codec::FrameLimits limits, std::string_view stream, std::size_t read_size) {
  simdjson::dom::parser parser;
  codec::StreamDecoder decoder(format, parser, limits);
  buffer::ByteBuffer input(64);
  Outcome outcome;
  proto::Request request;
  std::size_t offset = 0;
  while (offset < stream.size()) {
    const std::size_t take = std::min(read_size, stream.size() - offset);
    input.append(stream.substr(offset, take));
    offset += take;
    for (;;) {
      const std::string_view buffered = input.readable();
      const codec::DecodeResult result = decoder.decode(buffered);
      if (result.status == codec::DecodeStatus::error) {
        outcome.error = result.error;
        return outcome;
      }
      if (result.status == codec::DecodeStatus::need_more) {
        if (result.body_over_limit) {
          outcome.over_limit = true;
          return outcome;
        }
        require(result.frame_size == 0 || result.frame_size > buffered.size());
        break;
      }
      require(result.frame_size != 0 && result.frame_size <= buffered.size());
      if (format.framing == codec::Framing::json) {
        (void)proto::parse_json_request(decoder.header_object(), result.body, request);
      } else {
        proto::parse_simple_request(result.body, std::nullopt, request);
      }
      std::string frame(result.header);
      frame.push_back('|');
      frame.append(result.body);
      outcome.frames.push_back(std::move(frame));
      input.consume(result.frame_size);
    }
  }
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t choice = data[0];
  const std::size_t read_size = 1 + data[1] % 17;
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  constexpr codec::Framing kFramings[] = {codec::Framing::json, codec::Framing::length, codec::Framing::line,
                                          codec::Framing::raw};
  codec::WireFormat format;
  format.framing = kFramings[choice & 3];
  format.byte_order = (choice & 4) != 0 ? codec::ByteOrder::little : codec::ByteOrder::big;
  codec::FrameLimits limits;
  if ((choice & 8) != 0) limits = codec::FrameLimits{64, 256};  // small, to reach the limits

  const Outcome whole = decode(format, limits, stream, stream.size());
  const Outcome in_reads = decode(format, limits, stream, read_size);
  // raw framing has no boundaries of its own: each read is a message.
  if (format.framing != codec::Framing::raw) require(whole == in_reads);
  return 0;
}
