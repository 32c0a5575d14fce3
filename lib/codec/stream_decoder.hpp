#pragma once
// The decoder of a stream listener, whichever framing it speaks: one type for
// the connection to hold, dispatching to the framing's own decoder.

#include "codec/json_frame_decoder.hpp"
#include "codec/length_frame_decoder.hpp"
#include "codec/line_frame_decoder.hpp"
#include "codec/reply_encoder.hpp"

namespace framed::codec {

class StreamDecoder {
 public:
  StreamDecoder(FrameFormat format, simdjson::dom::parser& parser, FrameLimits limits, ByteOrder order) noexcept
      : format_(format), order_(order), json_(parser, limits, order), length_(limits, order), line_(limits) {}

  DecodeResult decode(std::string_view input) {
    switch (format_) {
      case FrameFormat::length: return length_.decode(input);
      case FrameFormat::line: return line_.decode(input);
      default: return json_.decode(input);
    }
  }

  // True while a frame has begun but its header (json: prefix and header;
  // length: the prefix; line: the line) is not complete: what
  // header_timeout bounds.
  [[nodiscard]] bool header_incomplete(std::string_view input) const noexcept {
    switch (format_) {
      case FrameFormat::length: return length_.header_incomplete(input);
      case FrameFormat::line: return LineFrameDecoder::header_incomplete(input);
      default: return JsonFrameDecoder::header_incomplete(input, order_);
    }
  }

  [[nodiscard]] simdjson::dom::object header_object() const noexcept { return json_.header_object(); }

 private:
  FrameFormat format_;
  ByteOrder order_;
  JsonFrameDecoder json_;
  LengthFrameDecoder length_;
  LineFrameDecoder line_;
};

}  // namespace framed::codec
