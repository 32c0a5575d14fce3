#pragma once
// Decoder for the `json` framing: u32 H · H bytes of JSON header · total_size
// bytes of body (PROTOCOL.md section 1).
//
// The header is parsed here, because only the header knows how long the body
// is. Parsing is in place (simdjson reads up to 64 bytes past its input: the
// ByteBuffer's tail padding guarantees they exist) with a parser shared by
// every connection of the reactor thread. A header whose body has not fully
// arrived yet is parsed again once it has, since another connection may have
// used the parser in between; the common case (header and body in one read)
// parses once.
//
// Header first: when a header completes before its body has arrived, decode()
// says so once (need_more with header_size and body_size set), so that a
// command that consumes bodies as they arrive can take over the body
// (skip_body). Otherwise the frame is returned whole, as before.
//
// Frame-level errors, all of which lose the frame boundary and so close:
//   H == 0, a header that is not valid UTF-8 JSON, not an object, has the
//   same key twice at its top level (two readers could disagree on which
//   total_size counts), or a total_size that is not a non-negative integer
//   → bad_frame;
//   H > max_header → frame_too_large. A total_size > max_body is announced
//   with body_over_limit: a streaming command may take the body over (put is
//   bounded by files.max_file_size instead); any other caller refuses it
//   (frame_too_large), and a decode() after the announcement does so itself.
// Request-level checks (cmd, id, args) are proto's, not the framing's.

#include <simdjson.h>

#include <string_view>
#include <vector>

#include "buffer/byte_buffer.hpp"
#include "codec/byte_order.hpp"
#include "codec/frame_decoder.hpp"

namespace framed::codec {

static_assert(buffer::ByteBuffer::kTailPadding >= simdjson::SIMDJSON_PADDING,
              "the input buffer's padding must cover simdjson's over-read");

class JsonFrameDecoder {
 public:
  static constexpr std::size_t kPrefixSize = 4;

  JsonFrameDecoder(simdjson::dom::parser& parser, FrameLimits limits, ByteOrder order) noexcept
      : parser_(&parser), limits_(limits), order_(order) {}

  // `input` is the connection's buffered bytes, starting at a frame boundary,
  // with ByteBuffer::kTailPadding bytes of memory after it.
  DecodeResult decode(std::string_view input);

  // The parsed header of the frame decode() just returned; valid until the
  // next decode() on any decoder sharing the parser.
  [[nodiscard]] simdjson::dom::object header_object() const noexcept { return header_; }

  // True when bytes of a frame are buffered but its header is not complete:
  // the state `header_timeout` limits.
  [[nodiscard]] bool header_incomplete(std::string_view input) const noexcept;

  // The caller takes the body of the frame whose header decode() announced
  // (DecodeResult::header_size) itself; the next decode() starts at the next
  // frame boundary.
  void skip_body() noexcept { header_known_ = false; }

 private:
  DecodeResult parse_header(std::string_view input, std::uint32_t header_size);
  [[nodiscard]] DecodeResult body_too_large() const;
  // Walks the header once: sets total_size (when present) and returns true
  // when a key appears twice.
  [[nodiscard]] bool scan_keys(simdjson::dom::element& total_size, bool& has_total_size);

  simdjson::dom::parser* parser_;
  FrameLimits limits_;
  ByteOrder order_;
  // The frame in progress, once its header has been parsed: its body's size.
  bool header_known_ = false;
  std::uint64_t body_size_ = 0;
  simdjson::dom::object header_;
  std::vector<std::string_view> key_scratch_;  // reused by scan_keys for many keys
};

}  // namespace framed::codec
