#pragma once
// The decoder of a stream listener, whichever framing it speaks: a variant of
// the framings' own decoders, so a framing added to codec::Framing without a
// decoder here is a compile error (make_stream_decoder's switch and every
// std::visit over the variant must cover it).

#include <variant>

#include "codec/framing.hpp"
#include "codec/json_frame_decoder.hpp"
#include "codec/length_frame_decoder.hpp"
#include "codec/line_frame_decoder.hpp"
#include "codec/raw_frame_decoder.hpp"

namespace framed::codec {

class StreamDecoder {
 public:
  // `format.framing` is a stream framing (json, length, line or raw).
  StreamDecoder(WireFormat format, simdjson::dom::parser& parser, FrameLimits limits) noexcept
      : decoder_(make(format, parser, limits)) {}

  DecodeResult decode(std::string_view input) {
    return std::visit([input](auto& decoder) { return decoder.decode(input); }, decoder_);
  }

  // True while a frame has begun but its header (json: prefix and header;
  // length: the prefix; line: the line) is not complete: what
  // header_timeout bounds.
  [[nodiscard]] bool header_incomplete(std::string_view input) const noexcept {
    return std::visit([input](const auto& decoder) { return decoder.header_incomplete(input); }, decoder_);
  }

  // The parsed JSON header of the frame decode() just returned (json framing
  // only; an empty object otherwise).
  [[nodiscard]] simdjson::dom::object header_object() const noexcept {
    if (const auto* json = std::get_if<JsonFrameDecoder>(&decoder_)) return json->header_object();
    return {};
  }

  // After decode() reported a complete header ahead of its body
  // (DecodeResult::header_size != 0): the caller consumes the header and
  // takes the body itself, in chunks; the decoder starts over at the next
  // frame boundary.
  void skip_body() noexcept {
    if (auto* json = std::get_if<JsonFrameDecoder>(&decoder_)) json->skip_body();
  }

 private:
  using Variant = std::variant<JsonFrameDecoder, LengthFrameDecoder, LineFrameDecoder, RawFrameDecoder>;

  static Variant make(WireFormat format, simdjson::dom::parser& parser, FrameLimits limits) noexcept {
    switch (format.framing) {
      case Framing::json: return JsonFrameDecoder(parser, limits, format.byte_order);
      case Framing::length: return LengthFrameDecoder(limits, format.byte_order);
      case Framing::line: return LineFrameDecoder(limits);
      case Framing::raw: return RawFrameDecoder(limits);
      case Framing::datagram: break;  // not a stream framing: see datagram_decoder.hpp
    }
    return JsonFrameDecoder(parser, limits, format.byte_order);
  }

  Variant decoder_;
};

}  // namespace framed::codec
