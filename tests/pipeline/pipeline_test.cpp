// The request pipeline and the stream transport together, as a stream
// connection joins them, over a real socketpair and the backend FRAMED_BACKEND
// names — without the daemon: a test CommandHost stands in for the shard, with
// the real registry, dispatcher and commands plus a few test commands that
// defer, stream a body in, or stream a body out.

#include "pipeline_fixture.hpp"

TEST_CASE("pipeline: frames split at every byte and glued get every reply, in order", "[pipeline]") {
  const std::string stream = json_frame(R"({"cmd":"ping","id":1})") +
                             json_frame(R"({"cmd":"upper","id":2,"total_size":5})", "hello") +
                             json_frame(R"({"cmd":"echo","id":3,"total_size":3})", "abc");
  for (std::size_t split = 0; split < stream.size(); split += 7) {
    INFO("split at " << split);
    Fixture fixture;
    fixture.to_send = stream.substr(0, split);
    fixture.pump_client();
    REQUIRE(fixture.run([&] { return fixture.sent == split; }));
    fixture.to_send = stream;
    REQUIRE(fixture.run([&] { return fixture.frames().size() == 3; }));
    const auto frames = fixture.frames();
    CHECK(frames[0].header == R"({"id":1,"ok":true,"pong":true})");
    CHECK(frames[1].body == "HELLO");
    CHECK(frames[2].body == "abc");
  }
}

TEST_CASE("pipeline: a deferred request holds back the requests after it until it answers", "[pipeline]") {
  Fixture fixture;
  fixture.to_send = json_frame(R"({"cmd":"later","id":1})") + json_frame(R"({"cmd":"ping","id":2})") +
                    json_frame(R"({"cmd":"later","id":3})") + json_frame(R"({"cmd":"ping","id":4})");
  REQUIRE(fixture.run([&] { return fixture.host.deferred.routes.size() == 1; }));
  reactor::testing::settle(*fixture.reactor);
  fixture.pump_client();
  // Request 3 has not started: it could depend on what request 1 does.
  CHECK(fixture.host.deferred.routes.size() == 1);
  CHECK(fixture.received.empty());  // nothing may overtake request 1

  proto::Reply first;
  first.body = "first";
  fixture.host.deliver_reply(fixture.host.deferred.routes[0], first);
  REQUIRE(fixture.run([&] { return fixture.frames().size() == 2 && fixture.host.deferred.routes.size() == 2; }));
  reactor::testing::settle(*fixture.reactor);
  fixture.pump_client();
  CHECK(fixture.frames().size() == 2);
  proto::Reply second;
  second.body = "second";
  fixture.host.deliver_reply(fixture.host.deferred.routes[1], second);
  REQUIRE(fixture.run([&] { return fixture.frames().size() == 4; }));
  const auto frames = fixture.frames();
  CHECK(frames[0].header == R"({"id":1,"ok":true,"total_size":5})");
  CHECK(frames[0].body == "first");
  CHECK(frames[1].header == R"({"id":2,"ok":true,"pong":true})");
  CHECK(frames[2].body == "second");
  CHECK(frames[3].header == R"({"id":4,"ok":true,"pong":true})");
}

TEST_CASE("pipeline: a body of several MiB reaches a streaming command in pieces", "[pipeline]") {
  Fixture fixture;
  constexpr std::size_t kSize = 6 * 1024 * 1024 + 17;
  std::string body(kSize, '\0');
  std::uint64_t checksum = 0;
  for (std::size_t i = 0; i < kSize; ++i) {
    body[i] = static_cast<char>(i * 131 % 251);
    checksum += static_cast<unsigned char>(body[i]);
  }
  fixture.to_send = json_frame(R"({"cmd":"sink","id":1,"total_size":)" + std::to_string(kSize) + "}", body) +
                    json_frame(R"({"cmd":"ping","id":2})");
  REQUIRE(fixture.run([&] { return fixture.frames().size() == 2; }));
  const auto frames = fixture.frames();
  CHECK(frames[0].header ==
        R"({"id":1,"ok":true,"bytes":)" + std::to_string(kSize) + R"(,"checksum":)" + std::to_string(checksum) + "}");
  CHECK(frames[1].header == R"({"id":2,"ok":true,"pong":true})");
  CHECK(fixture.host.sink.pieces > 1);  // taken as it arrived, not buffered whole
}

TEST_CASE("pipeline: a sink that is behind stops the reading until it resumes", "[pipeline]") {
  Fixture fixture;
  constexpr std::size_t kSize = 16 * 1024 * 1024;
  fixture.host.sink.budget = 64 * 1024;
  fixture.to_send = json_frame(R"({"cmd":"sink","id":1,"total_size":)" + std::to_string(kSize) + "}",
                               std::string(kSize, 'x'));
  REQUIRE(fixture.run([&] { return fixture.host.sink.behind; }));
  // Behind: the daemon stops reading, so the client's send stalls far short
  // of the body (the socket buffers hold a few hundred KiB at most).
  reactor::testing::settle(*fixture.reactor);
  fixture.pump_client();
  const std::size_t sent_while_behind = fixture.sent;
  reactor::testing::settle(*fixture.reactor);
  fixture.pump_client();
  CHECK(fixture.sent == sent_while_behind);
  CHECK(fixture.sent < kSize / 2);
  CHECK(fixture.host.sink.bytes == 64 * 1024);

  // Resumed, a budget at a time, until the whole body is in.
  REQUIRE(fixture.run([&] {
    if (fixture.host.sink.behind) {
      fixture.host.sink.budget = 1024 * 1024;
      fixture.host.resume_body(fixture.host.sink.route);
    }
    return fixture.frames().size() == 1;
  }, std::chrono::seconds(20)));
  CHECK(fixture.host.sink.bytes == kSize);
}

TEST_CASE("pipeline: a streamed reply body arrives whole, and events never inside it", "[pipeline]") {
  Fixture fixture;
  constexpr std::size_t kSize = 8 * 1024 * 1024;
  fixture.client_reading = false;  // the body backs up into the daemon's output bound
  fixture.to_send = json_frame(R"({"cmd":"source","id":1,"args":[")" + std::to_string(kSize) + R"("]})") +
                    json_frame(R"({"cmd":"ping","id":2})");
  REQUIRE(fixture.run([&] { return fixture.sent == fixture.to_send.size(); }));
  reactor::testing::settle(*fixture.reactor);

  buffer::ByteBuffer event(64);
  codec::ReplyEncoder(codec::WireFormat{}).encode_event(R"(,"event":"message","channel":"c")", "news", event);
  CHECK(fixture.connection->push_event(std::make_shared<const std::string>(event.readable())));

  fixture.client_reading = true;
  REQUIRE(fixture.run([&] { return fixture.frames().size() == 3; }, std::chrono::seconds(20)));
  const auto frames = fixture.frames();
  CHECK(frames[0].header == R"({"id":1,"ok":true,"total_size":)" + std::to_string(kSize) + "}");
  REQUIRE(frames[0].body.size() == kSize);
  bool pattern = true;
  for (std::size_t i = 0; i < kSize && pattern; ++i) pattern = frames[0].body[i] == static_cast<char>('a' + i % 26);
  CHECK(pattern);
  // The event waited for the body to end; the ping was answered after the
  // body too (order), and the event went out between the two replies or
  // after them — never inside one.
  CHECK(frames[1].header.find("\"event\":\"message\"") != std::string::npos);
  CHECK(frames[1].body == "news");
  CHECK(frames[2].header == R"({"id":2,"ok":true,"pong":true})");
}

TEST_CASE("pipeline: a large echo is sent from the buffer it arrived in, between its neighbours, whole",
          "[pipeline]") {
  // 1 MiB and 300 KiB bodies are past the size from which the reply's body
  // is the input buffer itself (pipeline/held_body.hpp); 100 KiB is below
  // it. Glued to pings on both sides, sent in one go and split anywhere.
  std::string big(1024 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('A' + i % 23);
  const std::string medium = big.substr(7, 300 * 1024);
  const std::string small = big.substr(3, 100 * 1024);
  const std::string stream = json_frame(R"({"cmd":"ping","id":1})") +
                             json_frame(R"({"cmd":"echo","id":2,"total_size":)" + std::to_string(big.size()) + "}", big) +
                             json_frame(R"({"cmd":"ping","id":3})") +
                             json_frame(R"({"cmd":"echo","id":4,"total_size":)" + std::to_string(medium.size()) + "}",
                                        medium) +
                             json_frame(R"({"cmd":"echo","id":5,"total_size":)" + std::to_string(small.size()) + "}",
                                        small) +
                             json_frame(R"({"cmd":"ping","id":6})");
  for (const std::size_t split : {std::size_t{0}, std::size_t{30}, std::size_t{65}, stream.size() / 2,
                                  stream.size() - 40, stream.size() - 1}) {
    INFO("split at " << split);
    Fixture fixture;
    const std::size_t idle_budget = fixture.budget.held();
    fixture.to_send = stream.substr(0, split);
    REQUIRE(fixture.run([&] { return fixture.sent == split; }));
    fixture.to_send = stream;
    REQUIRE(fixture.run([&] { return fixture.frames().size() == 6; }, std::chrono::seconds(20)));
    const auto frames = fixture.frames();
    CHECK(frames[0].header == R"({"id":1,"ok":true,"pong":true})");
    CHECK(frames[1].header == R"({"id":2,"ok":true,"total_size":)" + std::to_string(big.size()) + "}");
    CHECK(frames[1].body == big);
    CHECK(frames[2].header == R"({"id":3,"ok":true,"pong":true})");
    CHECK(frames[3].body == medium);
    CHECK(frames[4].body == small);
    CHECK(frames[5].header == R"({"id":6,"ok":true,"pong":true})");
    // Every held buffer is given back, and counted out of the budget, once
    // its body is sent: the connection holds no more than when it started
    // (give or take the buffers' own growth below the shrink size).
    reactor::testing::settle(*fixture.reactor);
    CHECK(fixture.budget.held() <= idle_budget + 1024 * 1024);
  }
}

TEST_CASE("pipeline: a consumer past its event backlog is told and finished", "[pipeline]") {
  Fixture fixture;
  fixture.client_reading = false;
  const auto event = std::make_shared<const std::string>(json_frame(R"({"event":"message","total_size":65536})",
                                                                    std::string(65536, 'e')));
  bool accepted = true;
  int pushed = 0;
  // The socket buffer and the output bound take some; the backlog the rest.
  while (accepted && pushed < 1000) {
    accepted = fixture.connection->push_event(event);
    ++pushed;
    reactor::testing::settle(*fixture.reactor);
  }
  CHECK_FALSE(accepted);
  CHECK(pushed < 1000);
  fixture.client_reading = true;
  REQUIRE(fixture.run([&] { return fixture.eof; }, std::chrono::seconds(20)));
  const auto frames = fixture.frames();
  REQUIRE(!frames.empty());
  CHECK(frames.back().header == R"({"event":"dropped","reason":"slow_subscriber"})");
}

TEST_CASE("pipeline: one event larger than the backlog is a slow consumer, however empty the output", "[pipeline]") {
  // An event goes straight to an output with room when nothing is queued
  // before it; that shortcut must not let one past max_event_backlog.
  Fixture fixture(1024, 4096);
  const auto small = std::make_shared<const std::string>(json_frame(R"({"event":"message","total_size":4000})",
                                                                    std::string(4000, 's')));
  const auto large = std::make_shared<const std::string>(json_frame(R"({"event":"message","total_size":4097})",
                                                                    std::string(4097, 'l')));
  CHECK(fixture.connection->push_event(small));
  reactor::testing::settle(*fixture.reactor);
  CHECK_FALSE(fixture.connection->push_event(large));
  CHECK(fixture.host.slow_consumers == 1);
  REQUIRE(fixture.run([&] { return fixture.eof; }, std::chrono::seconds(20)));
  const auto frames = fixture.frames();
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].body == std::string(4000, 's'));
  CHECK(frames[1].header == R"({"event":"dropped","reason":"slow_subscriber"})");
}

TEST_CASE("pipeline: events queued behind a full output leave before the reply that follows them", "[pipeline]") {
  // exec with "stream": true pushes its output events, then delivers its
  // reply: the reply may not overtake events still queued.
  Fixture fixture;
  fixture.client_reading = false;
  fixture.to_send = json_frame(R"({"cmd":"later","id":1})");
  REQUIRE(fixture.run([&] { return fixture.host.deferred.routes.size() == 1; }));
  constexpr int kEvents = 112;  // 7 MiB: more than the socket and the 4 MiB output bound take
  for (int i = 0; i < kEvents; ++i) {
    const std::string marker = std::to_string(i);
    CHECK(fixture.host.push_event(1, R"(,"event":"output","id":1,"stream":"stdout")",
                                  marker + std::string(65536 - marker.size(), '.')));
    reactor::testing::settle(*fixture.reactor);
  }
  proto::Reply done;
  done.add_field("exit_code", std::int64_t{0});
  fixture.host.deliver_reply(fixture.host.deferred.routes[0], done);
  fixture.client_reading = true;
  REQUIRE(fixture.run([&] { return fixture.frames().size() == kEvents + 1; }, std::chrono::seconds(20)));
  const auto frames = fixture.frames();
  for (int i = 0; i < kEvents; ++i) {
    CHECK(frames[static_cast<std::size_t>(i)].header.find(R"("event":"output")") != std::string::npos);
    CHECK(frames[static_cast<std::size_t>(i)].body.starts_with(std::to_string(i) + "."));
  }
  CHECK(frames.back().header == R"({"id":1,"ok":true,"exit_code":0})");
}

TEST_CASE("pipeline: max_pending_replies stops decoding until replies drain", "[pipeline]") {
  Fixture fixture(4);
  fixture.client_reading = false;
  // A body far larger than the sockets hold stalls at the front; the pings
  // behind it wait as ready replies until four are pending.
  std::string requests = json_frame(R"({"cmd":"source","args":["33554432"]})");
  for (int i = 0; i < 5; ++i) requests += json_frame(R"({"cmd":"ping"})");
  requests += json_frame(R"({"cmd":"later"})");
  fixture.to_send = requests;
  REQUIRE(fixture.run([&] { return fixture.sent == requests.size(); }));
  reactor::testing::settle(*fixture.reactor);
  CHECK(fixture.host.deferred.routes.empty());  // the seventh request waits
  fixture.client_reading = true;
  REQUIRE(fixture.run([&] { return fixture.host.deferred.routes.size() == 1; }));
  CHECK(fixture.frames().size() == 6);
}
