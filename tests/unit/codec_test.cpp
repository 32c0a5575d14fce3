// Frame decoders: every frame of a table, valid and invalid, fed whole, split
// at every byte position, one byte at a time and glued to its neighbours,
// must give exactly the same events. That is the whole point of the framing
// layer (PROTOCOL.md section 1).

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "buffer/byte_buffer.hpp"
#include "codec/reply_encoder.hpp"
#include "codec/datagram_decoder.hpp"
#include "codec/stream_decoder.hpp"

using framed::buffer::ByteBuffer;
using framed::codec::ByteOrder;
using framed::codec::DecodeStatus;
using framed::codec::FrameLimits;
using framed::codec::StreamDecoder;
using framed::codec::Framing;
using framed::codec::WireFormat;

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
std::vector<std::string> decode_chunks(Framing framing, const std::vector<std::string>& chunks,
                                       FrameLimits limits, ByteOrder order = ByteOrder::big) {
  simdjson::dom::parser parser;
  StreamDecoder decoder(WireFormat{framing, framed::codec::Payload::text, order}, parser, limits);
  ByteBuffer in(16);
  std::vector<std::string> events;
  for (const std::string& chunk : chunks) {
    in.append(chunk);
    for (;;) {
      auto result = decoder.decode(in.readable());
      if (result.status == DecodeStatus::need_more && result.body_over_limit) {
        // What a connection does unless a streaming command takes the body.
        events.push_back("error:frame_too_large");
        return events;
      }
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
      if (framing == Framing::json) {
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
void check_every_split(Framing format, const std::string& stream, const std::vector<std::string>& expected,
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
      {"a key twice", json_frame(R"({"cmd":"echo","total_size":1,"total_size":0})", "x"), {"error:bad_frame"}},
      {"cmd twice", json_frame(R"({"cmd":"ping","cmd":"echo"})"), {"error:bad_frame"}},
  };
  for (const Case& c : cases) {
    SECTION(c.name) { check_every_split(Framing::json, c.bytes, c.events, limits); }
  }

  SECTION("glued: every valid frame in one stream, then each error after them") {
    std::string stream;
    std::vector<std::string> expected;
    for (const Case& c : cases) {
      if (c.events.back().starts_with("error:")) continue;
      stream += c.bytes;
      expected.insert(expected.end(), c.events.begin(), c.events.end());
    }
    check_every_split(Framing::json, stream, expected, limits);
    for (const Case& c : cases) {
      if (!c.events.back().starts_with("error:")) continue;
      INFO(c.name);
      auto with_error = expected;
      with_error.push_back(c.events.back());
      CHECK(decode_chunks(Framing::json, {stream + c.bytes}, limits) == with_error);
    }
  }
}

TEST_CASE("json framing refuses over-limit frames before their bytes arrive", "[codec][json]") {
  const FrameLimits limits{64, 32};
  // Only the 4-byte prefix: the header need not arrive for the verdict.
  CHECK(decode_chunks(Framing::json, {u32(1'000'000)}, limits) == std::vector<std::string>{"error:frame_too_large"});
  // Only the header: the 1 GB body is refused before any of it is buffered.
  CHECK(decode_chunks(Framing::json, {json_frame(R"({"cmd":"echo","total_size":1000000000})")}, limits) ==
        std::vector<std::string>{"error:frame_too_large"});
}

TEST_CASE("json framing with little-endian prefixes", "[codec][json]") {
  const std::string stream = json_frame(R"({"cmd":"echo","total_size":2})", "ok", ByteOrder::little) +
                             json_frame(R"({"cmd":"ping"})", "", ByteOrder::little);
  check_every_split(Framing::json, stream, {"frame:echo|ok", "frame:ping|"}, {}, ByteOrder::little);
}

TEST_CASE("json decoder reports how many bytes the frame needs", "[codec][json]") {
  simdjson::dom::parser parser;
  StreamDecoder decoder(WireFormat{}, parser, FrameLimits{});
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
    SECTION(c.name) { check_every_split(Framing::length, c.bytes, c.events, limits); }
    if (!c.events.back().starts_with("error:")) {
      glued += c.bytes;
      glued_events.insert(glued_events.end(), c.events.begin(), c.events.end());
    }
  }
  SECTION("glued") { check_every_split(Framing::length, glued, glued_events, limits); }
  SECTION("little-endian") {
    check_every_split(Framing::length, u32(4, ByteOrder::little) + "ping", {"frame:ping"}, limits,
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
    SECTION(c.name) { check_every_split(Framing::line, c.bytes, c.events, limits); }
    if (!c.events.back().starts_with("error:")) {
      glued += c.bytes;
      glued_events.insert(glued_events.end(), c.events.begin(), c.events.end());
    }
  }
  SECTION("glued") { check_every_split(Framing::line, glued, glued_events, limits); }
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
    framed::codec::ReplyEncoder(WireFormat{Framing::json, framed::codec::Payload::text, ByteOrder::big}).encode(reply, out);
    CHECK(std::string(out.readable()) == json_frame(R"({"id":7,"ok":true,"pong":true})"));
  }
  SECTION("json: an error with its code and an escaped message") {
    reply.id_json = "\"a\"";
    reply.fail(framed::proto::ErrorCode::bad_request, "bad \"cmd\"\n");
    framed::codec::ReplyEncoder(WireFormat{Framing::json, framed::codec::Payload::text, ByteOrder::little}).encode(reply, out);
    CHECK(std::string(out.readable()) ==
          json_frame(R"({"id":"a","ok":false,"error":{"code":"bad_request","message":"bad \"cmd\"\n"}})", "",
                     ByteOrder::little));
  }
  SECTION("json: body") {
    reply.body = "HELLO";
    framed::codec::ReplyEncoder(WireFormat{Framing::json, framed::codec::Payload::text, ByteOrder::big}).encode(reply, out);
    CHECK(std::string(out.readable()) == json_frame(R"({"ok":true,"total_size":5})", "HELLO"));
  }
  SECTION("line: one line, whatever the reply holds") {
    reply.body = "a\\b\nc\rd";
    framed::codec::ReplyEncoder(WireFormat{Framing::line, framed::codec::Payload::text, ByteOrder::big}).encode(reply, out);
    CHECK(std::string(out.readable()) == "a\\\\b\\nc\\rd\n");
  }
  SECTION("line: errors are ERR code message") {
    reply.fail(framed::proto::ErrorCode::unknown_command, "unknown command 'x'");
    framed::codec::ReplyEncoder(WireFormat{Framing::line, framed::codec::Payload::text, ByteOrder::big}).encode(reply, out);
    CHECK(std::string(out.readable()) == "ERR unknown_command unknown command 'x'\n");
  }
  SECTION("length and text datagram") {
    reply.body = "pong";
    framed::codec::ReplyEncoder(WireFormat{Framing::length, framed::codec::Payload::text, ByteOrder::big}).encode(reply, out);
    CHECK(std::string(out.readable()) == u32(4) + "pong");
    out.clear();
    framed::codec::ReplyEncoder(WireFormat{Framing::datagram, framed::codec::Payload::text, ByteOrder::big}).encode(reply, out);
    CHECK(std::string(out.readable()) == "pong");
  }
}

TEST_CASE("json decoder announces a complete header ahead of its body, once", "[codec][json]") {
  simdjson::dom::parser parser;
  StreamDecoder decoder(WireFormat{}, parser, FrameLimits{});
  const std::string header = R"({"cmd":"echo","total_size":10})";
  const std::string frame = json_frame(header, "0123456789");
  ByteBuffer in;
  in.append(frame.substr(0, 4 + header.size() + 3));
  auto first = decoder.decode(in.readable());
  REQUIRE(first.status == DecodeStatus::need_more);
  CHECK(first.header_size == 4 + header.size());
  CHECK(first.body_size == 10);
  CHECK(first.header == header);
  std::string_view cmd;
  REQUIRE(decoder.header_object()["cmd"].get(cmd) == simdjson::SUCCESS);
  CHECK(cmd == "echo");
  // Not again for the same frame: whoever wanted the body has had the chance.
  auto again = decoder.decode(in.readable());
  CHECK(again.status == DecodeStatus::need_more);
  CHECK(again.header_size == 0);
  in.append(frame.substr(in.readable_size()));
  auto whole = decoder.decode(in.readable());
  REQUIRE(whole.status == DecodeStatus::frame);
  CHECK(whole.body == "0123456789");

  SECTION("skip_body: the caller takes the body; the next frame decodes from its boundary") {
    StreamDecoder fresh(WireFormat{}, parser, FrameLimits{});
    ByteBuffer stream;
    stream.append(frame.substr(0, 4 + header.size()));
    auto announced = fresh.decode(stream.readable());
    REQUIRE(announced.header_size == 4 + header.size());
    fresh.skip_body();
    stream.consume(announced.header_size);
    stream.append("0123456789");
    stream.consume(10);  // the body, taken by its consumer
    stream.append(json_frame(R"({"cmd":"ping"})"));
    auto next = fresh.decode(stream.readable());
    REQUIRE(next.status == DecodeStatus::frame);
    CHECK(next.body.empty());
  }
}

TEST_CASE("datagram decoder: one whole message per datagram", "[codec][datagram]") {
  simdjson::dom::parser parser;
  const FrameLimits limits{64, 32};
  framed::codec::DatagramDecoder json(WireFormat{Framing::datagram, framed::codec::Payload::json}, parser, limits,
                                      1000);
  framed::codec::DatagramDecoder text(WireFormat{Framing::datagram, framed::codec::Payload::text}, parser, limits,
                                      1000);
  const auto decode = [](framed::codec::DatagramDecoder& decoder, const std::string& bytes, bool truncated = false) {
    ByteBuffer in;
    in.append(bytes);
    auto result = decoder.decode(in.readable(), truncated);
    return result.status == DecodeStatus::frame ? "frame:" + std::string(result.body)
                                                : "error:" + std::string(framed::proto::to_string(result.error)) +
                                                      (result.status == DecodeStatus::error ? ":" + result.message : "");
  };
  CHECK(decode(json, json_frame(R"({"cmd":"echo","total_size":2})", "hi")) == "frame:hi");
  CHECK(decode(json, json_frame(R"({"cmd":"echo","total_size":2})", "h")) ==
        "error:bad_frame:datagram ends inside its frame");
  CHECK(decode(json, json_frame(R"({"cmd":"echo","total_size":2})", "hi!")) ==
        "error:bad_frame:datagram holds bytes after its frame");
  CHECK(decode(json, json_frame(R"({"cmd":"ping","cmd":"x"})")) == "error:bad_frame:header has the same key twice");
  CHECK(decode(text, "upper hello") == "frame:upper hello");
  // One trailing line ending goes (echo … | socat); nothing else is trimmed.
  CHECK(decode(text, "ping\n") == "frame:ping");
  CHECK(decode(text, "ping\r\n") == "frame:ping");
  CHECK(decode(text, "ping\n\n") == "frame:ping\n");
  CHECK(decode(text, " ping \r") == "frame: ping \r");
  CHECK(decode(text, std::string(32, 'x')) == "frame:" + std::string(32, 'x'));
  CHECK(decode(text, std::string(33, 'x')).starts_with("error:frame_too_large"));
  CHECK(decode(text, "ping", true).starts_with("error:frame_too_large"));
}

TEST_CASE("encoders: a body in pieces gives the bytes of the whole reply", "[codec][encoder]") {
  framed::proto::Reply reply;
  reply.id_json = "3";
  const std::string body = "line one\nback\\slash\r\n";
  for (const Framing framing : {Framing::json, Framing::length, Framing::line}) {
    INFO(framed::codec::to_string(framing));
    const WireFormat format{framing, framed::codec::Payload::text, ByteOrder::big};
    ByteBuffer whole;
    reply.body = body;
    framed::codec::ReplyEncoder(format).encode(reply, whole);
    reply.body = {};
    for (std::size_t piece = 1; piece <= body.size(); ++piece) {
      ByteBuffer streamed;
      framed::codec::ReplyEncoder encoder(format);
      encoder.encode_head(reply, body.size(), streamed);
      for (std::size_t at = 0; at < body.size(); at += piece) {
        encoder.encode_body_chunk(std::string_view(body).substr(at, piece), streamed);
      }
      encoder.encode_tail(streamed);
      CHECK(std::string(streamed.readable()) == std::string(whole.readable()));
    }
  }
}

TEST_CASE("encoders: events carry their fields and body, no id and no ok", "[codec][encoder]") {
  ByteBuffer out;
  framed::codec::ReplyEncoder(WireFormat{}).encode_event(R"(,"event":"message","channel":"news")", "hello", out);
  CHECK(std::string(out.readable()) == json_frame(R"({"event":"message","channel":"news","total_size":5})", "hello"));
  out.clear();
  framed::codec::ReplyEncoder(WireFormat{}).encode_event(R"(,"event":"dropped","reason":"slow_subscriber")", "", out);
  CHECK(std::string(out.readable()) == json_frame(R"({"event":"dropped","reason":"slow_subscriber"})"));
  out.clear();
  framed::codec::ReplyEncoder(WireFormat{Framing::line}).encode_event(R"(,"event":"message")", "a\nb", out);
  CHECK(std::string(out.readable()) == "a\\nb\n");
}

TEST_CASE("raw framing: each read is one message, up to max_body", "[codec][raw]") {
  simdjson::dom::parser parser;
  const FrameLimits limits{64, 8};
  StreamDecoder decoder(WireFormat{Framing::raw}, parser, limits);
  ByteBuffer in;
  CHECK(decoder.decode(in.readable()).status == DecodeStatus::need_more);
  in.append("upper hi");
  auto whole = decoder.decode(in.readable());
  REQUIRE(whole.status == DecodeStatus::frame);
  CHECK(whole.body == "upper hi");
  CHECK(whole.frame_size == 8);
  in.consume(whole.frame_size);
  in.append("0123456789");  // over max_body: cut into messages of max_body
  auto first = decoder.decode(in.readable());
  REQUIRE(first.status == DecodeStatus::frame);
  CHECK(first.body == "01234567");
  in.consume(first.frame_size);
  CHECK(decoder.decode(in.readable()).body == "89");
  CHECK_FALSE(decoder.header_incomplete(in.readable()));
}

TEST_CASE("encoders: raw listeners frame replies by reply_framing", "[codec][encoder][raw]") {
  using framed::codec::ReplyFraming;
  framed::proto::Reply reply;
  reply.id_json = "1";
  reply.body = "HELLO";
  ByteBuffer out;
  const auto raw = [](ReplyFraming framing, ByteOrder order = ByteOrder::big) {
    return WireFormat{Framing::raw, framed::codec::Payload::text, order, framing};
  };
  framed::codec::ReplyEncoder(raw(ReplyFraming::raw)).encode(reply, out);
  CHECK(std::string(out.readable()) == "HELLO");
  out.clear();
  framed::codec::ReplyEncoder(raw(ReplyFraming::length, ByteOrder::little)).encode(reply, out);
  CHECK(std::string(out.readable()) == u32(5, ByteOrder::little) + "HELLO");
  out.clear();
  framed::codec::ReplyEncoder(raw(ReplyFraming::json)).encode(reply, out);
  CHECK(std::string(out.readable()) == json_frame(R"({"id":1,"ok":true,"total_size":5})", "HELLO"));
  out.clear();
  reply.fail(framed::proto::ErrorCode::unknown_command, "unknown command 'x'");
  framed::codec::ReplyEncoder(raw(ReplyFraming::raw)).encode(reply, out);
  CHECK(std::string(out.readable()) == "ERR unknown_command unknown command 'x'");
}
