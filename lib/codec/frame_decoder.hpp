#pragma once
// Incremental frame decoders: they split a byte stream into frames, whatever
// way the bytes were cut into reads. A decoder looks at the connection's
// buffered bytes and says one of:
//   need_more  — no whole frame yet (need: bytes the frame is known to need
//                in total, so the caller can size its buffer once);
//   frame      — a whole frame at the front: header, body, and its size on
//                the wire, which the caller consumes once it has handled it;
//   error      — the stream is broken or a limit is exceeded: the caller
//                answers with the error and closes (PROTOCOL.md section 3).
// Limits are checked on the declared lengths, before any body is buffered.
//
// Decoders keep only the parse state of the frame in progress; they own no
// bytes. Not thread-safe (one per connection, on the reactor thread).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/error_code.hpp"

namespace framed::codec {

struct FrameLimits {
  std::uint64_t max_header = 65536;       // json header, or a whole line
  std::uint64_t max_body = 64ULL << 20;   // json body, or a length/datagram payload
};

enum class DecodeStatus : std::uint8_t { need_more, frame, error };

struct DecodeResult {
  DecodeStatus status = DecodeStatus::need_more;
  std::string_view header;  // json framing: the JSON header text
  std::string_view body;    // json body, or the payload of the simple framings
  std::size_t frame_size = 0;  // frame: bytes to consume; need_more: total bytes needed, 0 = unknown
  // need_more, json framing, once per frame: the header is complete and
  // parsed but its body is not all here. header_size: prefix and header
  // bytes (what to consume to take the body over); body_size: total_size.
  std::size_t header_size = 0;
  std::uint64_t body_size = 0;
  // With the announcement: the body is larger than max_body. Only a command
  // that streams its body (put, bounded by its own limit) may take it over;
  // anything else must refuse the frame (frame_too_large, `message`).
  bool body_over_limit = false;
  proto::ErrorCode error = proto::ErrorCode::bad_frame;
  std::string message;  // error only

  static DecodeResult need(std::size_t total = 0) {
    DecodeResult r;
    r.frame_size = total;
    return r;
  }
  static DecodeResult fail(proto::ErrorCode code, std::string message) {
    DecodeResult r;
    r.status = DecodeStatus::error;
    r.error = code;
    r.message = std::move(message);
    return r;
  }
};

}  // namespace framed::codec
