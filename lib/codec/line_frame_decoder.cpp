#include "codec/line_frame_decoder.hpp"

#include <string>

namespace framed::codec {

DecodeResult LineFrameDecoder::decode(std::string_view input) {
  if (scanned_ > input.size()) scanned_ = 0;  // the caller dropped its buffer
  const auto newline = input.find('\n', scanned_);
  if (newline == std::string_view::npos) {
    scanned_ = input.size();
    // One byte of slack: a '\r' at the very end may be the start of "\r\n".
    const bool may_end_in_cr = input.size() == limits_.max_header + 1 && input.back() == '\r';
    if (input.size() > limits_.max_header && !may_end_in_cr) {
      scanned_ = 0;
      return DecodeResult::fail(proto::ErrorCode::frame_too_large,
                                "line longer than max_header " + std::to_string(limits_.max_header) + " bytes");
    }
    return DecodeResult::need();
  }
  scanned_ = 0;
  std::string_view line = input.substr(0, newline);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > limits_.max_header) {
    return DecodeResult::fail(proto::ErrorCode::frame_too_large,
                              "line longer than max_header " + std::to_string(limits_.max_header) + " bytes");
  }
  DecodeResult result;
  result.status = DecodeStatus::frame;
  result.body = line;
  result.frame_size = newline + 1;
  return result;
}

}  // namespace framed::codec
