#pragma once
// Decoder for the `length` framing: u32 L · L bytes of payload, the form of
// Python's multiprocessing.connection, Erlang {packet,4} and Netty's
// LengthFieldPrepender. L = 0xFFFFFFFF is followed by a u64 length (Python's
// form for messages of 2 GiB and more). A payload over max_body is
// frame_too_large, refused before any of it is buffered.

#include "codec/byte_order.hpp"
#include "codec/frame_decoder.hpp"

namespace framed::codec {

class LengthFrameDecoder {
 public:
  static constexpr std::size_t kPrefixSize = 4;
  static constexpr std::size_t kLargePrefixSize = 12;
  static constexpr std::uint32_t kLargeMarker = 0xFFFFFFFFU;

  LengthFrameDecoder(FrameLimits limits, ByteOrder order) noexcept : limits_(limits), order_(order) {}

  DecodeResult decode(std::string_view input) const;
  // True while the length prefix itself is incomplete.
  [[nodiscard]] bool header_incomplete(std::string_view input) const noexcept;

 private:
  FrameLimits limits_;
  ByteOrder order_;
};

}  // namespace framed::codec
