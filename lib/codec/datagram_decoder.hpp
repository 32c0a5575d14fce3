#pragma once
// Decoder for the `datagram` framing: each datagram holds one whole message,
// a json frame or a simple-mode payload (WireFormat::payload). There is no
// reassembly: a datagram that was cut short by the socket, that ends inside
// its frame or that holds bytes after it is an error for that datagram only,
// and never disturbs the next one. A text datagram loses one trailing line
// ending ("\n" or "\r\n"), as `echo … | socat` sends it.

#include <simdjson.h>

#include <cstddef>
#include <string_view>

#include "codec/frame_decoder.hpp"
#include "codec/framing.hpp"
#include "codec/json_frame_decoder.hpp"

namespace framed::codec {

class DatagramDecoder {
 public:
  // datagram_limit: the largest datagram the socket reads whole.
  DatagramDecoder(WireFormat format, simdjson::dom::parser& parser, FrameLimits limits,
                  std::size_t datagram_limit) noexcept
      : format_(format), parser_(&parser), limits_(limits), datagram_limit_(datagram_limit) {}

  // `datagram` has ByteBuffer::kTailPadding bytes of memory after it (the
  // json header is parsed in place); `truncated`: the kernel cut it
  // (MSG_TRUNC). A frame result's body views `datagram`.
  DecodeResult decode(std::string_view datagram, bool truncated);

  // The parsed header of the json frame decode() just returned.
  [[nodiscard]] simdjson::dom::object header_object() const noexcept { return header_; }

 private:
  WireFormat format_;
  simdjson::dom::parser* parser_;
  FrameLimits limits_;
  std::size_t datagram_limit_;
  simdjson::dom::object header_;
};

}  // namespace framed::codec
