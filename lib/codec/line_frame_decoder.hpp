#pragma once
// Decoder for the `line` framing: payload bytes · '\n', a trailing '\r'
// stripped, for nc, socat, telnet and people. A line longer than max_header
// (not counting its "\n" or "\r\n") is frame_too_large, found as soon as that
// many bytes are buffered without a newline.
//
// The scan position survives between calls, so a long line arriving in many
// small reads is scanned once, not once per read.

#include "codec/frame_decoder.hpp"

namespace framed::codec {

class LineFrameDecoder {
 public:
  explicit LineFrameDecoder(FrameLimits limits) noexcept : limits_(limits) {}

  DecodeResult decode(std::string_view input);
  [[nodiscard]] bool header_incomplete(std::string_view input) const noexcept { return !input.empty(); }

 private:
  FrameLimits limits_;
  std::size_t scanned_ = 0;  // bytes of the current line known to hold no '\n'
};

}  // namespace framed::codec
