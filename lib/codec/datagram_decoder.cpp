#include "codec/datagram_decoder.hpp"

#include <algorithm>
#include <string>

namespace framed::codec {
namespace {

// One trailing "\n" or "\r\n" goes, so that `echo ping | socat - UDP:…`
// sends `ping`; nothing else is trimmed.
std::string_view without_line_ending(std::string_view text) noexcept {
  if (!text.ends_with('\n')) return text;
  text.remove_suffix(1);
  if (text.ends_with('\r')) text.remove_suffix(1);
  return text;
}

}  // namespace

DecodeResult DatagramDecoder::decode(std::string_view datagram, bool truncated) {
  header_ = {};
  const bool json = format_.json_frames();
  if (truncated || datagram.size() > datagram_limit_ || (!json && datagram.size() > limits_.max_body)) {
    return DecodeResult::fail(proto::ErrorCode::frame_too_large,
                              "datagram exceeds the payload limit of " +
                                  std::to_string(std::min<std::uint64_t>(datagram_limit_, limits_.max_body)) +
                                  " bytes");
  }
  if (!json) {
    DecodeResult payload;
    payload.status = DecodeStatus::frame;
    payload.body = without_line_ending(datagram);
    payload.frame_size = datagram.size();
    return payload;
  }
  // A fresh frame decoder per datagram: no state carries over.
  JsonFrameDecoder frames(*parser_, limits_, format_.byte_order);
  DecodeResult frame = frames.decode(datagram);
  if (frame.status == DecodeStatus::need_more && frame.body_over_limit) {
    // A datagram's body is held in memory whatever its command.
    return DecodeResult::fail(proto::ErrorCode::frame_too_large, frame.message);
  }
  if (frame.status == DecodeStatus::need_more) {
    return DecodeResult::fail(proto::ErrorCode::bad_frame, "datagram ends inside its frame");
  }
  if (frame.status == DecodeStatus::frame && frame.frame_size != datagram.size()) {
    return DecodeResult::fail(proto::ErrorCode::bad_frame, "datagram holds bytes after its frame");
  }
  if (frame.status == DecodeStatus::frame) header_ = frames.header_object();
  return frame;
}

}  // namespace framed::codec
