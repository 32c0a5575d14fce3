#include "codec/json_frame_decoder.hpp"

#include <algorithm>
#include <string>

namespace framed::codec {

bool JsonFrameDecoder::header_incomplete(std::string_view input) const noexcept {
  if (input.empty()) return false;
  if (input.size() < kPrefixSize) return true;
  return input.size() < kPrefixSize + load_u32(input.data(), order_);
}

DecodeResult JsonFrameDecoder::decode(std::string_view input) {
  if (input.size() < kPrefixSize) return DecodeResult::need();
  const std::uint32_t header_size = load_u32(input.data(), order_);
  if (header_size == 0) {
    return DecodeResult::fail(proto::ErrorCode::bad_frame, "header length is 0");
  }
  if (header_size > limits_.max_header) {
    return DecodeResult::fail(proto::ErrorCode::frame_too_large,
                              "header of " + std::to_string(header_size) + " bytes exceeds max_header " +
                                  std::to_string(limits_.max_header));
  }
  const std::size_t header_end = kPrefixSize + header_size;
  if (input.size() < header_end) return DecodeResult::need(header_end);

  bool parsed_now = false;
  if (!header_known_) {
    DecodeResult checked = parse_header(input, header_size);
    if (checked.status == DecodeStatus::error) return checked;
    header_known_ = true;
    parsed_now = true;
  }
  const std::size_t frame_size = header_end + body_size_;
  if (input.size() < frame_size) {
    DecodeResult pending = DecodeResult::need(frame_size);
    if (parsed_now) {  // announced once, while header_object() is this frame's
      pending.header = input.substr(kPrefixSize, header_size);
      pending.header_size = header_end;
      pending.body_size = body_size_;
    }
    return pending;
  }

  // The header was parsed on an earlier call, before its body had arrived;
  // the shared parser may hold another connection's header by now.
  if (!parsed_now) {
    DecodeResult reparsed = parse_header(input, header_size);
    if (reparsed.status == DecodeStatus::error) return reparsed;
  }
  header_known_ = false;
  DecodeResult result;
  result.status = DecodeStatus::frame;
  result.header = input.substr(kPrefixSize, header_size);
  result.body = input.substr(header_end, body_size_);
  result.frame_size = frame_size;
  return result;
}

DecodeResult JsonFrameDecoder::parse_header(std::string_view input, std::uint32_t header_size) {
  const auto* text = reinterpret_cast<const std::uint8_t*>(input.data() + kPrefixSize);
  // realloc_if_needed = false: the ByteBuffer's tail padding makes the
  // over-read safe, so simdjson need not copy the header.
  simdjson::dom::element root;
  if (const auto error = parser_->parse(text, header_size, false).get(root); error != simdjson::SUCCESS) {
    return DecodeResult::fail(proto::ErrorCode::bad_frame,
                              std::string("header is not valid UTF-8 JSON: ") + simdjson::error_message(error));
  }
  if (root.get_object().get(header_) != simdjson::SUCCESS) {
    return DecodeResult::fail(proto::ErrorCode::bad_frame, "header is not a JSON object");
  }
  if (has_duplicate_key()) {
    return DecodeResult::fail(proto::ErrorCode::bad_frame, "header has the same key twice");
  }
  body_size_ = 0;
  simdjson::dom::element total_size;
  if (header_["total_size"].get(total_size) == simdjson::SUCCESS) {
    // get_uint64 accepts only integers that fit: negative numbers, floats
    // (1.0, 1e3) and other types are all refused.
    if (total_size.get_uint64().get(body_size_) != simdjson::SUCCESS) {
      return DecodeResult::fail(proto::ErrorCode::bad_frame, "\"total_size\" must be a non-negative integer");
    }
  }
  if (body_size_ > limits_.max_body) {
    return DecodeResult::fail(proto::ErrorCode::frame_too_large,
                              "body of " + std::to_string(body_size_) + " bytes exceeds max_body " +
                                  std::to_string(limits_.max_body));
  }
  return DecodeResult::need();
}

bool JsonFrameDecoder::has_duplicate_key() {
  // Sorting views of the keys is O(n log n) whatever a client sends; a
  // pairwise check would let a 64 KiB header of short keys cost seconds.
  key_scratch_.clear();
  for (const auto field : header_) key_scratch_.push_back(field.key);
  if (key_scratch_.size() < 2) return false;
  std::sort(key_scratch_.begin(), key_scratch_.end());
  return std::adjacent_find(key_scratch_.begin(), key_scratch_.end()) != key_scratch_.end();
}

}  // namespace framed::codec
