// Requests from json headers and simple payloads; JSON text written by us.

#include <catch2/catch.hpp>

#include "buffer/byte_buffer.hpp"
#include "proto/json_writer.hpp"
#include "proto/request.hpp"

using framed::proto::Request;

namespace {

std::optional<std::string> parse(simdjson::dom::parser& parser, const std::string& header, Request& out) {
  simdjson::dom::object object = parser.parse(header).get_object().value();
  return framed::proto::parse_json_request(object, "", out);
}

}  // namespace

TEST_CASE("json requests: fields and bad_request reasons", "[proto]") {
  simdjson::dom::parser parser;
  Request request;

  CHECK_FALSE(parse(parser, R"({"cmd":"exec","id":12,"args":["a","b c"],"name":"x"})", request));
  CHECK(request.command == "exec");
  CHECK(request.id_json == "12");
  CHECK(request.args == std::vector<std::string_view>{"a", "b c"});

  CHECK_FALSE(parse(parser, R"({"cmd":"ping","id":"req-\"1\""})", request));
  CHECK(request.id_json == R"("req-\"1\"")");

  CHECK_FALSE(parse(parser, R"({"cmd":"ping","id":18446744073709551615})", request));
  CHECK(request.id_json == "18446744073709551615");

  CHECK(parse(parser, R"({"id":1})", request).value().find("cmd") != std::string::npos);
  CHECK(request.id_json == "1");  // the error reply still carries the id
  CHECK(parse(parser, R"({"cmd":7})", request).value().find("cmd") != std::string::npos);
  CHECK(parse(parser, R"({"cmd":"ping","id":1.5})", request).value().find("id") != std::string::npos);
  CHECK(parse(parser, R"({"cmd":"ping","id":null})", request).value().find("id") != std::string::npos);
  CHECK(parse(parser, R"({"cmd":"ping","args":"a"})", request).value().find("args") != std::string::npos);
  CHECK(parse(parser, R"({"cmd":"ping","args":[1]})", request).value().find("args") != std::string::npos);
}

TEST_CASE("simple requests: COMMAND[ SPACE ARGUMENT-BYTES]", "[proto]") {
  Request request;
  framed::proto::parse_simple_request("upper hello world", std::nullopt, request);
  CHECK(request.command == "upper");
  CHECK(request.body == "hello world");
  framed::proto::parse_simple_request("ping", std::nullopt, request);
  CHECK(request.command == "ping");
  CHECK(request.body.empty());
  framed::proto::parse_simple_request("any text at all", "upper", request);
  CHECK(request.command == "upper");
  CHECK(request.body == "any text at all");

  std::vector<std::string_view> words;
  framed::proto::split_words("  grep  -n x ", words);
  CHECK(words == std::vector<std::string_view>{"grep", "-n", "x"});
}

TEST_CASE("JSON writer escapes what JSON requires and round-trips", "[proto]") {
  std::string out;
  framed::proto::JsonWriter json(out);
  json.begin_object();
  json.key("s").value(std::string_view("q\"b\\n\n\x01\x7f\xc3\xa9", 10));
  json.key("list").begin_array().value(1).value(false).value(std::uint64_t{18446744073709551615ULL}).end_array();
  json.key("k\"ey").value(-5);
  json.end_object();
  CHECK(out == "{\"s\":\"q\\\"b\\\\n\\n\\u0001\x7f\xc3\xa9\",\"list\":[1,false,18446744073709551615],\"k\\\"ey\":-5}");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE(parser.parse(out).get(root) == simdjson::SUCCESS);
  CHECK(std::string_view(root["s"]) == std::string_view("q\"b\\n\n\x01\x7f\xc3\xa9", 10));
}

TEST_CASE("byte buffer keeps its padding and its bytes through growth", "[buffer]") {
  framed::buffer::ByteBuffer buffer(8);
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string piece(static_cast<std::size_t>(i % 37), static_cast<char>('a' + i % 26));
    buffer.append(piece);
    expected += piece;
    if (i % 3 == 0 && buffer.readable_size() > 10) {
      buffer.consume(10);
      expected.erase(0, 10);
    }
    REQUIRE(buffer.readable() == expected);
    REQUIRE(buffer.capacity() - (buffer.read_ptr() - buffer.readable().data()) >=
            buffer.readable_size() + framed::buffer::ByteBuffer::kTailPadding);
  }
  buffer.consume(buffer.readable_size());
  CHECK(buffer.empty());
  buffer.shrink_if_idle(16);
  CHECK(buffer.capacity() == 16 + framed::buffer::ByteBuffer::kTailPadding);
}
