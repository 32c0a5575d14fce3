// One datagram, json or text payload, whole or cut by the kernel: the
// decoder never reads outside it, and every frame it returns parses as a
// request.

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "buffer/byte_buffer.hpp"
#include "codec/datagram_decoder.hpp"
#include "proto/request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace framed;
  if (size < 1) return 0;
  const std::uint8_t choice = data[0];
  codec::WireFormat format;
  format.framing = codec::Framing::datagram;
  format.payload = (choice & 1) != 0 ? codec::Payload::json : codec::Payload::text;
  format.byte_order = (choice & 2) != 0 ? codec::ByteOrder::little : codec::ByteOrder::big;
  const bool truncated = (choice & 4) != 0;
  codec::FrameLimits limits;
  if ((choice & 8) != 0) limits = codec::FrameLimits{64, 256};

  // As the endpoint receives it: into a buffer with tail padding.
  buffer::ByteBuffer datagram(64);
  datagram.append(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  simdjson::dom::parser parser;
  codec::DatagramDecoder decoder(format, parser, limits, 65536);
  const std::string_view bytes = datagram.readable();
  const codec::DecodeResult result = decoder.decode(bytes, truncated);
  if (result.status != codec::DecodeStatus::frame) return 0;
  if (!result.body.empty()) {
    const bool inside = result.body.data() >= bytes.data() &&
                        result.body.data() + result.body.size() <= bytes.data() + bytes.size();
    if (!inside) std::abort();
  }
  proto::Request request;
  if (format.json_frames()) {
    (void)proto::parse_json_request(decoder.header_object(), result.body, request);
  } else {
    proto::parse_simple_request(result.body, std::nullopt, request);
  }
  return 0;
}
