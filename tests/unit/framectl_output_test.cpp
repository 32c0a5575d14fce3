// framectl's pure parts: output helpers (base64, the --json line, pretty
// JSON), reply heads, request heads; and lib/digest's SHA-256 on known vectors.

#include <catch2/catch.hpp>

#include <simdjson.h>

#include <string>

#include "digest/sha256.hpp"
#include "output.hpp"
#include "reply_head.hpp"
#include "request.hpp"

using framed::framectl::append_bytes_member;
using framed::framectl::base64;
using framed::framectl::json_line;
using framed::framectl::pretty_json;
using framed::framectl::ReplyHead;

TEST_CASE("base64 of every tail length (RFC 4648 test vectors)", "[framectl]") {
  CHECK(base64("") == "");
  CHECK(base64("f") == "Zg==");
  CHECK(base64("fo") == "Zm8=");
  CHECK(base64("foo") == "Zm9v");
  CHECK(base64("foob") == "Zm9vYg==");
  CHECK(base64("fooba") == "Zm9vYmE=");
  CHECK(base64("foobar") == "Zm9vYmFy");
  CHECK(base64(std::string("\xff\x00", 2)) == "/wA=");
}

TEST_CASE("a body member is text when it is UTF-8, base64 otherwise", "[framectl]") {
  std::string members;
  append_bytes_member(members, "body", "caf\xc3\xa9 \"q\"\n");
  CHECK(members == ",\"body\":\"caf\xc3\xa9 \\\"q\\\"\\n\"");
  members.clear();
  append_bytes_member(members, "stdout", std::string("\xc3(", 2));  // a broken sequence
  CHECK(members == ",\"stdout_base64\":\"wyg=\"");
}

TEST_CASE("json_line adds members to the daemon's header and stays one valid line", "[framectl]") {
  ReplyHead head;
  head.assign(R"({"id":1,"ok":true,"total_size":3})");
  std::string members;
  append_bytes_member(members, "body", "a\nb");
  const std::string line = json_line(head, members);
  CHECK(line == "{\"id\":1,\"ok\":true,\"total_size\":3,\"body\":\"a\\nb\"}\n");
  simdjson::dom::parser parser;
  simdjson::dom::element parsed;
  REQUIRE(parser.parse(line).get(parsed) == simdjson::SUCCESS);
  CHECK(std::string_view(parsed["body"]) == "a\nb");
  CHECK(json_line(head) == "{\"id\":1,\"ok\":true,\"total_size\":3}\n");
}

TEST_CASE("reply heads: fields and error text", "[framectl]") {
  ReplyHead head;
  head.assign(R"({"id":"x","ok":false,"error":{"code":"not_found","message":"no such file"},"size":7})");
  CHECK_FALSE(head.ok());
  CHECK(head.error_code() == "not_found");
  CHECK(head.error_message() == "no such file");
  CHECK(head.uint_field("size") == 7U);
  CHECK_FALSE(head.uint_field("total_size").has_value());
  CHECK(head.body_size() == 0);
  head.assign(R"({"event":"message","channel":"c","total_size":2})");
  CHECK(head.event() == "message");
  CHECK(head.string_field("channel") == "c");
  CHECK(head.body_size() == 2);
}

TEST_CASE("pretty JSON reads back as the same value", "[framectl]") {
  const std::string text = R"({"a":1,"b":[true,null,-2,1.5,"s\"t"],"c":{},"d":[],"e":{"f":18446744073709551615}})";
  simdjson::dom::parser parser;
  simdjson::dom::element value;
  REQUIRE(parser.parse(text).get(value) == simdjson::SUCCESS);
  const std::string pretty = pretty_json(value);
  CHECK(pretty.find("\n  \"b\": [\n    true,") != std::string::npos);
  simdjson::dom::parser reparser;
  simdjson::dom::element again;
  REQUIRE(reparser.parse(pretty).get(again) == simdjson::SUCCESS);
  CHECK(simdjson::minify(again) == simdjson::minify(value));
}

TEST_CASE("request heads: length prefix, id, total_size, escaped fields", "[framectl]") {
  framed::framectl::JsonRequest request("put");
  request.field("name", std::string_view("a\"b")).field("offset", std::uint64_t{5}).args({"x", "y z"});
  const std::string frame = request.head(10);
  REQUIRE(frame.size() > 4);
  const auto length = (static_cast<unsigned char>(frame[0]) << 24) | (static_cast<unsigned char>(frame[1]) << 16) |
                      (static_cast<unsigned char>(frame[2]) << 8) | static_cast<unsigned char>(frame[3]);
  REQUIRE(static_cast<std::size_t>(length) == frame.size() - 4);
  simdjson::dom::parser parser;
  simdjson::dom::element header;
  REQUIRE(parser.parse(frame.substr(4)).get(header) == simdjson::SUCCESS);
  CHECK(std::string_view(header["cmd"]) == "put");
  CHECK(std::string_view(header["name"]) == "a\"b");
  CHECK(std::uint64_t(header["total_size"]) == 10);
  CHECK(std::uint64_t(header["offset"]) == 5);
  CHECK(std::string_view(header["args"].at(1)) == "y z");
  CHECK(header["id"].is_uint64());
}

TEST_CASE("SHA-256 in pieces equals SHA-256 whole (FIPS 180-2 vectors)", "[digest]") {
  framed::digest::Sha256 empty;
  CHECK(empty.hex_digest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  framed::digest::Sha256 pieces;
  pieces.update("a");
  pieces.update("bc");
  CHECK(pieces.hex_digest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
