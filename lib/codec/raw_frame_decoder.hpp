#pragma once
// Decoder for the `raw` framing: no request framing at all. What one read of
// the socket returned is one message, as a tutorial server's
// `conn.recv(1024)` takes it, up to max_body bytes (a longer read is cut
// into messages of max_body). Exact for byte-wise commands (upper, echo)
// whatever the chunking; otherwise only as reliable as the client's pacing,
// which is what its clients already live with.

#include <algorithm>

#include "codec/frame_decoder.hpp"

namespace framed::codec {

class RawFrameDecoder {
 public:
  explicit RawFrameDecoder(FrameLimits limits) noexcept : limits_(limits) {}

  DecodeResult decode(std::string_view input) const {
    if (input.empty()) return DecodeResult::need();
    if (limits_.max_body == 0) {
      return DecodeResult::fail(proto::ErrorCode::frame_too_large, "max_body is 0: a raw listener takes no bytes");
    }
    DecodeResult result;
    result.status = DecodeStatus::frame;
    result.body = input.substr(0, static_cast<std::size_t>(std::min<std::uint64_t>(input.size(), limits_.max_body)));
    result.frame_size = result.body.size();
    return result;
  }
  // There is no header to wait for.
  [[nodiscard]] bool header_incomplete(std::string_view /*input*/) const noexcept { return false; }

 private:
  FrameLimits limits_;
};

}  // namespace framed::codec
