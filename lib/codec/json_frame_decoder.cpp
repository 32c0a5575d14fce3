#include "codec/json_frame_decoder.hpp"

#include <algorithm>
#include <cstring>
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
  const bool over_limit = body_size_ > limits_.max_body;
  if (over_limit && !parsed_now) return body_too_large();
  const std::size_t frame_size = header_end + body_size_;
  // A body past max_body is announced even when it is all here: the caller
  // decides whether a streaming command takes it or the frame is refused.
  if (input.size() < frame_size || over_limit) {
    DecodeResult pending = DecodeResult::need(frame_size);
    if (parsed_now) {  // announced once, while header_object() is this frame's
      pending.header = input.substr(kPrefixSize, header_size);
      pending.header_size = header_end;
      pending.body_size = body_size_;
      if (over_limit) {
        pending.body_over_limit = true;
        pending.message = body_too_large().message;
      }
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
  // One walk over the header finds total_size and any key seen twice.
  body_size_ = 0;
  simdjson::dom::element total_size;
  bool has_total_size = false;
  if (scan_keys(total_size, has_total_size)) {
    return DecodeResult::fail(proto::ErrorCode::bad_frame, "header has the same key twice");
  }
  if (has_total_size) {
    // get_uint64 accepts only integers that fit: negative numbers, floats
    // (1.0, 1e3) and other types are all refused.
    if (total_size.get_uint64().get(body_size_) != simdjson::SUCCESS) {
      return DecodeResult::fail(proto::ErrorCode::bad_frame, "\"total_size\" must be a non-negative integer");
    }
  }
  return DecodeResult::need();
}

DecodeResult JsonFrameDecoder::body_too_large() const {
  return DecodeResult::fail(proto::ErrorCode::frame_too_large,
                            "body of " + std::to_string(body_size_) + " bytes exceeds max_body " +
                                std::to_string(limits_.max_body));
}

bool JsonFrameDecoder::scan_keys(simdjson::dom::element& total_size, bool& has_total_size) {
  // Headers have a handful of keys: each is compared with the ones before it
  // (lengths first), a few instructions per frame. Past kPairwiseUpTo keys
  // they are sorted instead, O(n log n) whatever a client sends (pairwise, a
  // 64 KiB header of short keys would cost seconds).
  constexpr std::size_t kPairwiseUpTo = 16;
  const char* seen_data[kPairwiseUpTo];  // left uninitialised: only [0, count) is read
  std::size_t seen_size[kPairwiseUpTo];
  std::size_t count = 0;
  for (const auto field : header_) {
    const std::string_view key = field.key;
    if (count < kPairwiseUpTo) {
      for (std::size_t i = 0; i < count; ++i) {
        if (seen_size[i] == key.size() && std::memcmp(seen_data[i], key.data(), key.size()) == 0) return true;
      }
      seen_data[count] = key.data();
      seen_size[count] = key.size();
    }
    ++count;
    if (key == "total_size") {
      total_size = field.value;
      has_total_size = true;
    }
  }
  if (count <= kPairwiseUpTo) return false;
  key_scratch_.clear();
  for (const auto field : header_) key_scratch_.push_back(field.key);
  std::sort(key_scratch_.begin(), key_scratch_.end());
  return std::adjacent_find(key_scratch_.begin(), key_scratch_.end()) != key_scratch_.end();
}

}  // namespace framed::codec
