// Unit tests for the bench's codec: every reply stream is decoded whole, one
// byte at a time and in uneven pieces, and must give the same replies each
// way (PROTOCOL.md §1: splits and glue change nothing).

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "codec.hpp"

namespace framed::bench {
namespace {

int g_failures = 0;

#define CHECK(condition)                                                     \
  do {                                                                       \
    if (!(condition)) {                                                      \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #condition); \
      ++g_failures;                                                          \
    }                                                                        \
  } while (0)

struct Seen {
  ReplyKind kind;
  bool ok;
  std::optional<std::int64_t> id;
  std::string text;
  std::uint64_t body_size;
  bool body_checked;
  bool body_matches;
  bool operator==(const Seen&) const = default;
};

struct Collector final : ReplySink {
  void on_reply(const Reply& r) override {
    replies.push_back({r.kind, r.ok, r.id, std::string(r.text), r.body_size, r.body_checked, r.body_matches});
  }
  std::vector<Seen> replies;
};

struct Outcome {
  std::vector<Seen> replies;
  std::optional<std::string> error;
};

// Feeds `stream` in pieces of `piece` bytes (0 = all at once).
Outcome decode(Protocol protocol, ByteOrder order, const std::string& stream, std::size_t piece,
               std::span<const char> check_body = {}) {
  auto decoder = make_decoder(protocol, order);
  if (!check_body.empty()) decoder->check_next_body(check_body);
  Collector sink;
  Outcome outcome;
  const std::size_t step = piece == 0 ? stream.size() : piece;
  for (std::size_t pos = 0; pos < stream.size() && !outcome.error; pos += step) {
    const std::size_t take = std::min(step, stream.size() - pos);
    outcome.error = decoder->feed({stream.data() + pos, take}, sink);
  }
  outcome.replies = std::move(sink.replies);
  return outcome;
}

// The same stream must decode identically in every split.
Outcome decode_all_ways(Protocol protocol, ByteOrder order, const std::string& stream,
                        std::span<const char> check_body = {}) {
  const Outcome whole = decode(protocol, order, stream, 0, check_body);
  for (const std::size_t piece : {1U, 2U, 3U, 7U, 64U}) {
    const Outcome split = decode(protocol, order, stream, piece, check_body);
    CHECK(split.replies == whole.replies);
    CHECK(split.error.has_value() == whole.error.has_value());
  }
  return whole;
}

std::string json_frame(std::string_view header, std::string_view body = {}, ByteOrder order = ByteOrder::big) {
  const auto n = static_cast<std::uint32_t>(header.size());
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) {
    out[static_cast<std::size_t>(i)] =
        static_cast<char>(n >> (order == ByteOrder::big ? 24 - 8 * i : 8 * i));
  }
  return out.append(header).append(body);
}

void test_json_replies() {
  const std::vector<char> body = make_body(300);
  const std::string body_text(body.begin(), body.end());
  const std::string stream = json_frame(R"({"id":1,"ok":true,"pong":true})") +
                             json_frame(R"({ "ok" : true , "id" : 2 , "total_size" : 300 })", body_text) +
                             json_frame(R"({"id":3,"ok":false,"error":{"code":"bad_request","message":"x \"y\""}})") +
                             json_frame(R"({"id":"s","ok":true,"extra":[1,2.5e3,{"a":null}],"total_size":0})");
  const Outcome out = decode_all_ways(Protocol::json, ByteOrder::big, stream, body);
  CHECK(!out.error);
  CHECK(out.replies.size() == 4);
  if (out.replies.size() != 4) return;
  CHECK(out.replies[0].ok && out.replies[0].id == 1 && out.replies[0].body_size == 0);
  CHECK(out.replies[1].ok && out.replies[1].id == 2 && out.replies[1].body_size == 300);
  CHECK(out.replies[1].body_checked && out.replies[1].body_matches);
  CHECK(!out.replies[2].ok && out.replies[2].text.find("bad_request") != std::string::npos);
  CHECK(out.replies[3].ok && !out.replies[3].id);

  // A little-endian length prefix is read as such.
  const Outcome little =
      decode_all_ways(Protocol::json, ByteOrder::little, json_frame(R"({"id":9,"ok":true})", {}, ByteOrder::little));
  CHECK(!little.error && little.replies.size() == 1);
}

void test_json_body_mismatch() {
  const std::vector<char> body = make_body(100);
  std::string wrong(body.begin(), body.end());
  wrong[57] = static_cast<char>(wrong[57] ^ 1);
  const Outcome out = decode_all_ways(Protocol::json, ByteOrder::big,
                                      json_frame(R"({"id":1,"ok":true,"total_size":100})", wrong) +
                                          json_frame(R"({"id":2,"ok":true,"total_size":100})", wrong),
                                      body);
  CHECK(out.replies.size() == 2);
  if (out.replies.size() != 2) return;
  CHECK(out.replies[0].body_checked && !out.replies[0].body_matches);
  CHECK(!out.replies[1].body_checked);  // only the first reply is compared
}

void test_json_broken_streams() {
  CHECK(decode_all_ways(Protocol::json, ByteOrder::big, std::string(4, '\0')).error);
  CHECK(decode_all_ways(Protocol::json, ByteOrder::big, json_frame("[1,2]")).error);
  CHECK(decode_all_ways(Protocol::json, ByteOrder::big, json_frame(R"({"ok":true,"total_size":-1})")).error);
  CHECK(decode_all_ways(Protocol::json, ByteOrder::big, json_frame(R"({"ok":true} x)")).error);
  CHECK(decode_all_ways(Protocol::json, ByteOrder::big, json_frame(R"({"ok":true)")).error);
  // A big-endian length read as little-endian is far over the header limit.
  CHECK(decode_all_ways(Protocol::json, ByteOrder::little, json_frame(R"({"ok":true})")).error);
  // Replies before the broken frame are still delivered.
  const Outcome out = decode(Protocol::json, ByteOrder::big, json_frame(R"({"id":1,"ok":true})") + json_frame("nope"), 0);
  CHECK(out.error && out.replies.size() == 1);
}

void test_resp_replies() {
  const std::vector<char> body = make_body(5);
  const std::string body_text(body.begin(), body.end());
  const std::string stream = "+PONG\r\n$5\r\n" + body_text + "\r\n-ERR unknown command\r\n:42\r\n$-1\r\n$0\r\n\r\n";
  const Outcome out = decode_all_ways(Protocol::resp, ByteOrder::big, stream, body);
  CHECK(!out.error);
  CHECK(out.replies.size() == 6);
  if (out.replies.size() != 6) return;
  CHECK(out.replies[0].kind == ReplyKind::simple && out.replies[0].text == "PONG");
  CHECK(out.replies[1].kind == ReplyKind::bulk && out.replies[1].body_size == 5 && out.replies[1].body_checked &&
        out.replies[1].body_matches);
  CHECK(out.replies[2].kind == ReplyKind::error && !out.replies[2].ok && out.replies[2].text == "ERR unknown command");
  CHECK(out.replies[3].kind == ReplyKind::integer && out.replies[3].text == "42");
  CHECK(out.replies[4].kind == ReplyKind::null_bulk);
  CHECK(out.replies[5].kind == ReplyKind::bulk && out.replies[5].body_size == 0);

  CHECK(decode_all_ways(Protocol::resp, ByteOrder::big, "*1\r\n+PONG\r\n").error);
  CHECK(decode_all_ways(Protocol::resp, ByteOrder::big, "$3\r\nabcXY").error);
  CHECK(decode_all_ways(Protocol::resp, ByteOrder::big, "+PONG\n").error);
  CHECK(decode_all_ways(Protocol::resp, ByteOrder::big, "$x\r\n").error);
}

void test_requests() {
  std::vector<char> out;
  append_request(out, RequestSpec{Protocol::json, Command::ping, ByteOrder::big, {}}, 7);
  const std::string ping = std::string("\0\0\0\x15", 4) + R"({"cmd":"ping","id":7})";
  CHECK(std::string(out.begin(), out.end()) == ping);

  const std::vector<char> body = make_body(3);
  out.clear();
  append_request(out, RequestSpec{Protocol::json, Command::echo, ByteOrder::little, body}, 12);
  const std::string header = R"({"cmd":"echo","id":12,"total_size":3})";
  const std::string echo = std::string(1, static_cast<char>(header.size())) + std::string(3, '\0') + header +
                           std::string(body.begin(), body.end());
  CHECK(std::string(out.begin(), out.end()) == echo);

  out.clear();
  append_request(out, RequestSpec{Protocol::resp, Command::ping, ByteOrder::big, {}}, 1);
  append_request(out, RequestSpec{Protocol::resp, Command::echo, ByteOrder::big, body}, 2);
  CHECK(std::string(out.begin(), out.end()) ==
        "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$3\r\n" + std::string(body.begin(), body.end()) + "\r\n");
}

void test_check_reply() {
  Reply reply;
  reply.ok = true;
  reply.id = 5;
  CHECK(!check_reply(reply, {Protocol::json, Command::ping, 0, 5}));
  CHECK(check_reply(reply, {Protocol::json, Command::ping, 0, 6}));  // wrong id
  reply.body_size = 10;
  CHECK(check_reply(reply, {Protocol::json, Command::echo, 11, 5}));  // wrong length
  reply.body_checked = true;
  reply.body_matches = false;
  CHECK(check_reply(reply, {Protocol::json, Command::echo, 10, 5}));  // wrong bytes
  reply.ok = false;
  CHECK(check_reply(reply, {Protocol::json, Command::ping, 0, 5}));

  Reply pong;
  pong.kind = ReplyKind::simple;
  pong.ok = true;
  pong.text = "PONG";
  CHECK(!check_reply(pong, {Protocol::resp, Command::ping, 0, 0}));
  CHECK(check_reply(pong, {Protocol::resp, Command::echo, 0, 0}));
  pong.text = "OK";
  CHECK(check_reply(pong, {Protocol::resp, Command::ping, 0, 0}));
}

// --protocol echo: the json requests come back as they went, and only the
// exact bytes of the request answer it.
void test_echoed_requests() {
  const std::vector<char> body = make_body(300);
  std::vector<char> sent;
  append_request(sent, RequestSpec{Protocol::json, Command::ping, ByteOrder::big, {}}, 41);
  append_request(sent, RequestSpec{Protocol::json, Command::echo, ByteOrder::big, body}, 42);
  const Outcome out = decode_all_ways(Protocol::echo, ByteOrder::big, std::string(sent.begin(), sent.end()), body);
  CHECK(!out.error);
  CHECK(out.replies.size() == 2);
  if (out.replies.size() != 2) return;
  const auto as_reply = [](const Seen& seen) {
    Reply reply;
    reply.ok = seen.ok;
    reply.id = seen.id;
    reply.text = seen.text;
    reply.body_size = seen.body_size;
    reply.body_checked = seen.body_checked;
    reply.body_matches = seen.body_matches;
    return reply;
  };
  const Reply ping = as_reply(out.replies[0]);
  const Reply echo = as_reply(out.replies[1]);
  CHECK(!check_reply(ping, {Protocol::echo, Command::ping, 0, 41}));
  CHECK(check_reply(ping, {Protocol::echo, Command::ping, 0, 4}));     // another id: a prefix of the digits
  CHECK(check_reply(ping, {Protocol::echo, Command::ping, 0, 410}));   // another id: longer
  CHECK(check_reply(ping, {Protocol::echo, Command::echo, 0, 41}));    // not the echo request
  CHECK(echo.body_checked && echo.body_matches);
  CHECK(!check_reply(echo, {Protocol::echo, Command::echo, 300, 42}));
  CHECK(check_reply(echo, {Protocol::echo, Command::echo, 301, 42}));  // wrong size
  Reply changed = ping;
  const std::string spaced = R"({"cmd":"ping", "id":41})";  // the same JSON, not the same bytes
  changed.text = spaced;
  CHECK(check_reply(changed, {Protocol::echo, Command::ping, 0, 41}));
}

}  // namespace
}  // namespace framed::bench

int main() {
  using namespace framed::bench;
  test_json_replies();
  test_json_body_mismatch();
  test_json_broken_streams();
  test_resp_replies();
  test_requests();
  test_check_reply();
  test_echoed_requests();
  if (g_failures != 0) {
    std::fprintf(stderr, "%d checks failed\n", g_failures);
    return 1;
  }
  std::puts("all bench codec checks passed");
  return 0;
}
