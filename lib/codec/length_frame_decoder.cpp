#include "codec/length_frame_decoder.hpp"

#include <string>

namespace framed::codec {

bool LengthFrameDecoder::header_incomplete(std::string_view input) const noexcept {
  if (input.empty()) return false;
  if (input.size() < kPrefixSize) return true;
  return load_u32(input.data(), order_) == kLargeMarker && input.size() < kLargePrefixSize;
}

DecodeResult LengthFrameDecoder::decode(std::string_view input) const {
  if (input.size() < kPrefixSize) return DecodeResult::need();
  std::uint64_t payload_size = load_u32(input.data(), order_);
  std::size_t prefix_size = kPrefixSize;
  if (payload_size == kLargeMarker) {
    if (input.size() < kLargePrefixSize) return DecodeResult::need(kLargePrefixSize);
    payload_size = load_u64(input.data() + kPrefixSize, order_);
    prefix_size = kLargePrefixSize;
  }
  if (payload_size > limits_.max_body) {
    return DecodeResult::fail(proto::ErrorCode::frame_too_large, "payload of " + std::to_string(payload_size) +
                                                                     " bytes exceeds max_body " +
                                                                     std::to_string(limits_.max_body));
  }
  const std::size_t frame_size = prefix_size + payload_size;
  if (input.size() < frame_size) return DecodeResult::need(frame_size);
  DecodeResult result;
  result.status = DecodeStatus::frame;
  result.body = input.substr(prefix_size, payload_size);
  result.frame_size = frame_size;
  return result;
}

}  // namespace framed::codec
