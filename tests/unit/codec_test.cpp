// Frame decoders: every frame of a table, valid and invalid, fed whole, split
// at every byte position, one byte at a time and glued to its neighbours,
// must give exactly the same events. That is the whole point of the framing
// layer (PROTOCOL.md section 1).

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "buffer/byte_buffer.hpp"
#include "codec/reply_encoder.hpp"
#include "codec/stream_decoder.hpp"

using framed::buffer::ByteBuffer;
using framed::codec::ByteOrder;
using framed::codec::DecodeStatus;
using framed::codec::FrameLimits;
using framed::codec::StreamDecoder;
using framed::codec::FrameFormat;

namespace {

std::string u32(std::uint32_t value, ByteOrder order = ByteOrder::big) {
  char bytes[4];
  framed::codec::store_u32(bytes, value, order);
  return std::string(bytes, 4);
}

std::string u64(std::uint64_t value, ByteOrder order = ByteOrder::big) {
  char bytes[8];
  framed::codec::store_u64(bytes, value, order);
  return std::string(bytes, 8);
}

std::string json_frame(const std::string& header, const std::string& body = "", ByteOrder order = ByteOrder::big) {
  return u32(static_cast<std::uint32_t>(header.size()), order) + header + body;
}

// Feeds `chunks` to a decoder the way a connection does (append, decode
// until it needs more, consume whole frames) and returns what it saw, one
// string per event. Decoding stops at the first error, as a connection does.
std::vector<std::string> decode_chunks(FrameFormat format, const std::vector<std::string>& chunks,
                                       FrameLimits limits, ByteOrder order = ByteOrder::big) {
  simdjson::dom::parser parser;
  StreamDecoder decoder(format, parser, limits, order);
  ByteBuffer in(16);
  std::vector<std::string> events;
  for (const std::string& chunk : chunks) {
    in.append(chunk);
    for (;;) {
      auto result = decoder.decode(in.readable());
      if (result.status == DecodeStatus::need_more) {
        // Another connection uses the shared parser in between reads.
        simdjson::dom::element noise;
        REQUIRE(parser.parse(std::string_view("{\"cmd\":\"noise\",\"total_size\":99}")).get(noise) ==
                simdjson::SUCCESS);
        break;
      }
      if (result.status == DecodeStatus::error) {
        events.push_back("error:" + std::string(framed::proto::to_string(result.error)));
        return events;
      }
      std::string event = "frame:";
      if (format == FrameFormat::json) {
        std::string_view cmd = "?";
        if (decoder.header_object()["cmd"].get(cmd) != simdjson::SUCCESS) cmd = "?";
        event += std::string(cmd) + "|";
      }
      event += std::string(result.body);
      events.push_back(std::move(event));
      in.consume(result.frame_size);
    }
  }
  return events;
}

// The property: whole, every two-way split, byte by byte — same events.
void check_every_split(FrameFormat format, const std::string& stream, const std::vector<std::string>& expected,
                       FrameLimits limits = {}, ByteOrder order = ByteOrder::big) {
  INFO("stream of " << stream.size() << " bytes");
  CHECK(decode_chunks(format, {stream}, limits, order) == expected);
  for (std::size_t split = 1; split < stream.size(); ++split) {
    INFO("split at " << split);
    CHECK(decode_chunks(format, {stream.substr(0, split), stream.substr(split)}, limits, order) == expected);
  }
  std::vector<std::string> bytes;
  for (char c : stream) bytes.emplace_back(1, c);
  CHECK(decode_chunks(format, bytes, limits, order) == expected);
}

struct Case {
  const char* name;
  std::string bytes;
  std::vector<std::string> events;
};

}  // namespace

TEST_CASE("json framing: every frame, whole, split at every byte, and glued", "[codec][json]") {
  const FrameLimits limits{64, 32};
  const std::vector<Case> cases = {
      {"ping", json_frame(R"({"cmd":"ping","id":1})"), {"frame:ping|"}},
      {"body", json_frame(R"({"cmd":"echo","total_size":5})", "hello"), {"frame:echo|hello"}},
      {"binary body", json_frame(R"({"cmd":"echo","total_size":3})", std::string("\0\n\xff", 3)),
       {std::string("frame:echo|\0\n\xff", 14)}},
      {"no cmd is still a frame (bad_request is proto's)", json_frame(R"({"id":2,"total_size":2})", "xy"),
       {"frame:?|xy"}},
      {"header at max_header", json_frame(R"({"cmd":"ping","pad":")" + std::string(64 - 23, 'p') + "\"}"),
       {"frame:ping|"}},
      {"body at max_body", json_frame(R"({"cmd":"echo","total_size":32})", std::string(32, 'b')),
       {"frame:echo|" + std::string(32, 'b')}},
      {"header length 0", u32(0) + "{}", {"error:bad_frame"}},
      {"header over max_header", u32(65) + std::string(65, ' '), {"error:frame_too_large"}},
      {"body over max_body", json_frame(R"({"cmd":"echo","total_size":33})"), {"error:frame_too_large"}},
      {"not JSON", json_frame("{nope"), {"error:bad_frame"}},
      {"invalid UTF-8", json_frame("{\"cmd\":\"\xff\xfe\"}"), {"error:bad_frame"}},
      {"not an object", json_frame("[1,2]"), {"error:bad_frame"}},
      {"a number", json_frame("42"), {"error:bad_frame"}},
      {"negative total_size", json_frame(R"({"cmd":"echo","total_size":-1})"), {"error:bad_frame"}},
      {"float total_size", json_frame(R"({"cmd":"echo","total_size":1.0})"), {"error:bad_frame"}},
      {"string total_size", json_frame(R"({"cmd":"echo","total_size":"3"})"), {"error:bad_frame"}},
  };
  for (const Case& c : cases) {
    SECTION(c.name) { check_every_split(FrameFormat::json, c.bytes, c.events, limits); }
  }

  SECTION("glued: every valid frame in one stream, then each error after them") {
    std::string stream;
    std::vector<std::string> expected;
    for (const Case& c : cases) {
      if (c.events.back().starts_with("error:")) continue;
      stream += c.bytes;
      expected.insert(expected.end(), c.events.begin(), c.events.end());
    }
    check_every_split(FrameFormat::json, stream, expected, limits);
    for (const Case& c : cases) {
      if (!c.events.back().starts_with("error:")) continue;
      INFO(c.name);
      auto with_error = expected;
      with_error.push_back(c.events.back());
      CHECK(decode_chunks(FrameFormat::json, {stream + c.bytes}, limits) == with_error);
    }
  }
}

TEST_CASE("json framing refuses over-limit frames before their bytes arrive", "[codec][json]") {
  const FrameLimits limits{64, 32};
  // Only the 4-byte prefix: the header need not arrive for the verdict.
  CHECK(decode_chunks(FrameFormat::json, {u32(1'000'000)}, limits) == std::vector<std::string>{"error:frame_too_large"});
  // Only the header: the 1 GB body is refused before any of it is buffered.
  CHECK(decode_chunks(FrameFormat::json, {json_frame(R"({"cmd":"echo","total_size":1000000000})")}, limits) ==
        std::vector<std::string>{"error:frame_too_large"});
}

TEST_CASE("json framing with little-endian prefixes", "[codec][json]") {
  const std::string stream = json_frame(R"({"cmd":"echo","total_size":2})", "ok", ByteOrder::little) +
                             json_frame(R"({"cmd":"ping"})", "", ByteOrder::little);
  check_every_split(FrameFormat::json, stream, {"frame:echo|ok", "frame:ping|"}, {}, ByteOrder::little);
}

TEST_CASE("json decoder reports how many bytes the frame needs", "[codec][json]") {
  simdjson::dom::parser parser;
  StreamDecoder decoder(FrameFormat::json, parser, FrameLimits{}, ByteOrder::big);
  ByteBuffer in;
  in.append(json_frame(R"({"cmd":"echo","total_size":1000})"));
  const auto result = decoder.decode(in.readable());
  REQUIRE(result.status == DecodeStatus::need_more);
  CHECK(result.frame_size == in.readable_size() + 1000);
  CHECK_FALSE(decoder.header_incomplete(in.readable()));
  CHECK(decoder.header_incomplete(in.readable().substr(0, 3)));
  CHECK(decoder.header_incomplete(in.readable().substr(0, 10)));
  CHECK_FALSE(decoder.header_incomplete(""));
}

TEST_CASE("length framing: every frame, whole, split at every byte, and glued", "[codec][length]") {
  const FrameLimits limits{64, 16};
  const std::vector<Case> cases = {
      {"payload", u32(10) + "upper abcd", {"frame:upper abcd"}},
      {"empty payload", u32(0), {"frame:"}},
      {"at max_body", u32(16) + std::string(16, 'x'), {"frame:" + std::string(16, 'x')}},
      {"large form", u32(0xFFFFFFFF) + u64(4) + "ping", {"frame:ping"}},
      {"over max_body", u32(17) + std::string(17, 'x'), {"error:frame_too_large"}},
      {"large form over max_body", u32(0xFFFFFFFF) + u64(1ULL << 40), {"error:frame_too_large"}},
  };
  std::string glued;
  std::vector<std::string> glued_events;
  for (const Case& c : cases) {
    SECTION(c.name) { check_every_split(FrameFormat::length, c.bytes, c.events, limits); }
    if (!c.events.back().starts_with("error:")) {
      glued += c.bytes;
      glued_events.insert(glued_events.end(), c.events.begin(), c.events.end());
    }
  }
  SECTION("glued") { check_every_split(FrameFormat::length, glued, glued_events, limits); }
  SECTION("little-endian") {
    check_every_split(FrameFormat::length, u32(4, ByteOrder::little) + "ping", {"frame:ping"}, limits,
                      ByteOrder::little);
  }
}

TEST_CASE("line framing: every line, whole, split at every byte, and glued", "[codec][line]") {
  const FrameLimits limits{8, 1024};
  const std::vector<Case> cases = {
      {"plain", "ping\n", {"frame:ping"}},
      {"crlf", "upper a\r\n", {"frame:upper a"}},
      {"empty line", "\n", {"frame:"}},
      {"only the last \\r is stripped", "a\r\r\n", {"frame:a\r"}},
      {"at max_header", "12345678\n", {"frame:12345678"}},
      {"at max_header with crlf", "12345678\r\n", {"frame:12345678"}},
      {"over max_header", "123456789\n", {"error:frame_too_large"}},
      {"over max_header, no newline yet", "123456789", {"error:frame_too_large"}},
  };
  std::string glued;
  std::vector<std::string> glued_events;
  for (const Case& c : cases) {
    SECTION(c.name) { check_every_split(FrameFormat::line, c.bytes, c.events, limits); }
    if (!c.events.back().starts_with("error:")) {
      glued += c.bytes;
      glued_events.insert(glued_events.end(), c.events.begin(), c.events.end());
    }
  }
  SECTION("glued") { check_every_split(FrameFormat::line, glued, glued_events, limits); }
}

TEST_CASE("length prefix uses Python's large form from 2 GiB", "[codec][length]") {
  char prefix[12];
  CHECK(framed::codec::encode_length_prefix(0x7FFFFFFF, ByteOrder::big, prefix) == 4);
  CHECK(std::string(prefix, 4) == u32(0x7FFFFFFF));
  CHECK(framed::codec::encode_length_prefix(0x80000000ULL, ByteOrder::big, prefix) == 12);
  CHECK(std::string(prefix, 12) == u32(0xFFFFFFFF) + u64(0x80000000ULL));
  CHECK(framed::codec::encode_length_prefix(5ULL << 32, ByteOrder::little, prefix) == 12);
  CHECK(std::string(prefix, 12) == u32(0xFFFFFFFF, ByteOrder::little) + u64(5ULL << 32, ByteOrder::little));
}

TEST_CASE("reply encoders write each framing's bytes", "[codec][encoder]") {
  framed::proto::Reply reply;
  ByteBuffer out;

  SECTION("json: id first, total_size only with a body, extra fields last") {
    reply.id_json = "7";
    reply.add_field("pong", true);
    framed::codec::ReplyEncoder(FrameFormat::json, ByteOrder::big).encode(reply, out);
    CHECK(std::string(out.readable()) == json_frame(R"({"id":7,"ok":true,"pong":true})"));
  }
  SECTION("json: an error with its code and an escaped message") {
    reply.id_json = "\"a\"";
    reply.fail(framed::proto::ErrorCode::bad_request, "bad \"cmd\"\n");
    framed::codec::ReplyEncoder(FrameFormat::json, ByteOrder::little).encode(reply, out);
    CHECK(std::string(out.readable()) ==
          json_frame(R"({"id":"a","ok":false,"error":{"code":"bad_request","message":"bad \"cmd\"\n"}})", "",
                     ByteOrder::little));
  }
  SECTION("json: body") {
    reply.body = "HELLO";
    framed::codec::ReplyEncoder(FrameFormat::json, ByteOrder::big).encode(reply, out);
    CHECK(std::string(out.readable()) == json_frame(R"({"ok":true,"total_size":5})", "HELLO"));
  }
  SECTION("line: one line, whatever the reply holds") {
    reply.body = "a\\b\nc\rd";
    framed::codec::ReplyEncoder(FrameFormat::line, ByteOrder::big).encode(reply, out);
    CHECK(std::string(out.readable()) == "a\\\\b\\nc\\rd\n");
  }
  SECTION("line: errors are ERR code message") {
    reply.fail(framed::proto::ErrorCode::unknown_command, "unknown command 'x'");
    framed::codec::ReplyEncoder(FrameFormat::line, ByteOrder::big).encode(reply, out);
    CHECK(std::string(out.readable()) == "ERR unknown_command unknown command 'x'\n");
  }
  SECTION("length and text datagram") {
    reply.body = "pong";
    framed::codec::ReplyEncoder(FrameFormat::length, ByteOrder::big).encode(reply, out);
    CHECK(std::string(out.readable()) == u32(4) + "pong");
    out.clear();
    framed::codec::ReplyEncoder(FrameFormat::datagram_text, ByteOrder::big).encode(reply, out);
    CHECK(std::string(out.readable()) == "pong");
  }
}
