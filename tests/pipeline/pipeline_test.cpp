// The request pipeline and the stream transport together, as a stream
// connection joins them, over a real socketpair and the backend FRAMED_BACKEND
// names — without the daemon: a test CommandHost stands in for the shard, with
// the real registry, dispatcher and commands plus a few test commands that
// defer, stream a body in, or stream a body out.

#include <catch2/catch.hpp>
#include <simdjson.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "../reactor/reactor_test_support.hpp"
#include "auth/principal_table.hpp"
#include "auth/rate_buckets.hpp"
#include "codec/byte_order.hpp"
#include "commands/command.hpp"
#include "commands/concurrent_runs.hpp"
#include "commands/exec.hpp"
#include "config/config.hpp"
#include "exec/worker_pool.hpp"
#include "pipeline/dispatcher.hpp"
#include "server/stats.hpp"
#include "server/stream_connection.hpp"

namespace {

using namespace framed;
using reactor::testing::make_reactor;
using reactor::testing::make_socketpair;
using reactor::testing::run_until;

// --- test commands ----------------------------------------------------------

// Answers later, when the test says so: "later" defers, the test delivers.
struct Deferred {
  std::vector<commands::ReplyRoute> routes;
};

class LaterCommand final : public commands::Command {
 public:
  explicit LaterCommand(Deferred& deferred) : deferred_(deferred) {}
  std::string_view name() const noexcept override { return "later"; }
  std::string_view summary() const noexcept override { return "test: answers when the test delivers"; }
  void run(const proto::Request&, proto::Reply&, commands::CommandContext& context) override {
    deferred_.routes.push_back(context.defer());
  }

 private:
  Deferred& deferred_;
};

// Takes its body in pieces, at most `budget` bytes before it is "behind";
// answers with the byte count and the number of pieces.
struct SinkLog {
  std::size_t budget = SIZE_MAX;  // bytes taken before the sink says it is behind
  std::uint64_t bytes = 0;
  std::uint64_t pieces = 0;
  std::uint64_t checksum = 0;
  bool behind = false;
  commands::ReplyRoute route;
};

class CountSink final : public commands::BodySink {
 public:
  explicit CountSink(SinkLog& log) : log_(log) {}
  std::size_t write(std::string_view bytes) override {
    const std::size_t taken = std::min(bytes.size(), log_.budget);
    log_.budget -= taken;
    if (taken != 0) ++log_.pieces;
    for (std::size_t i = 0; i < taken; ++i) log_.checksum += static_cast<unsigned char>(bytes[i]);
    log_.bytes += taken;
    log_.behind = taken < bytes.size();
    return taken;
  }
  void finish(proto::Reply& reply, commands::CommandContext&) override {
    reply.add_field("bytes", log_.bytes);
    reply.add_field("checksum", log_.checksum);
  }

 private:
  SinkLog& log_;
};

class SinkCommand final : public commands::Command {
 public:
  explicit SinkCommand(SinkLog& log) : log_(log) {}
  std::string_view name() const noexcept override { return "sink"; }
  std::string_view summary() const noexcept override { return "test: counts a streamed body"; }
  bool streams_body() const noexcept override { return true; }
  void run(const proto::Request&, proto::Reply& reply, commands::CommandContext&) override {
    reply.fail(proto::ErrorCode::internal, "never run: streams its body");
  }
  std::unique_ptr<commands::BodySink> open_body(const proto::Request&, proto::Reply&,
                                                commands::CommandContext& context) override {
    log_.route = context.route;
    return std::make_unique<CountSink>(log_);
  }

 private:
  SinkLog& log_;
};

// A reply body of `size` bytes made in pieces: byte i is 'a' + i % 26.
class PatternSource final : public proto::BodySource {
 public:
  explicit PatternSource(std::uint64_t size) : size_(size) {}
  std::uint64_t size() const noexcept override { return size_; }
  Read read(std::span<char> into) override {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(into.size(), size_ - position_));
    for (std::size_t i = 0; i < n; ++i) into[i] = static_cast<char>('a' + (position_ + i) % 26);
    position_ += n;
    return Read{Status::data, n};
  }

 private:
  std::uint64_t size_;
  std::uint64_t position_ = 0;
};

class SourceCommand final : public commands::Command {
 public:
  std::string_view name() const noexcept override { return "source"; }
  std::string_view summary() const noexcept override { return "test: a streamed reply body of args[0] bytes"; }
  void run(const proto::Request& request, proto::Reply& reply, commands::CommandContext&) override {
    reply.body_source = std::make_unique<PatternSource>(std::stoull(std::string(request.args.at(0))));
  }
};

// --- the stand-in for the shard ----------------------------------------------

class TestHost final : public commands::CommandHost, public server::StreamConnection::Owner {
 public:
  explicit TestHost(reactor::Reactor& reactor) : reactor_(reactor), pool_(4) {
    commands::register_basic_commands(registry_);
    registry_.add(std::make_unique<LaterCommand>(deferred));
    registry_.add(std::make_unique<SinkCommand>(sink));
    registry_.add(std::make_unique<SourceCommand>());
    stats_.resize(registry_.all().size());
  }

  const config::Config& config() const noexcept override { return config_; }
  const commands::CommandRegistry& commands() const noexcept override { return registry_; }
  exec::WorkerPool& worker_pool() noexcept override { return pool_; }
  void post(std::function<void()> fn) override { reactor_.post(std::move(fn)); }
  void deliver_reply(const commands::ReplyRoute& route, proto::Reply& reply) override {
    if (connection != nullptr) connection->deliver(route, reply);
  }
  void resume_body(const commands::ReplyRoute& route) override {
    if (connection != nullptr) connection->resume_body(route);
  }
  bool push_event(std::uint64_t, std::string_view fields, std::string_view body) override {
    if (connection == nullptr) return false;
    buffer::ByteBuffer out(256);
    codec::ReplyEncoder(connection->event_format()).encode_event(fields, body, out);
    return connection->push_event(std::make_shared<const std::string>(out.readable()));
  }
  pubsub::ChannelTable& channels() noexcept override { return channels_; }
  void forward_publish(std::string_view /*channel*/, std::string_view /*message*/) override {}
  pubsub::Subscriber* subscriber(std::uint64_t) noexcept override { return connection; }
  commands::ExecStats& exec_stats(std::string_view) override { return exec_; }
  commands::FileStats& file_stats() noexcept override { return files_; }
  commands::PartialUploads& partial_uploads() noexcept override { return partials_; }
  void expire_partial_uploads_on_time() override {}
  std::optional<std::size_t> publish(std::string_view channel, std::string_view message,
                                     std::function<void(std::size_t)> done) override {
    return channels_.publish(channel, message, std::move(done));
  }
  bool publishes_are_queued() const noexcept override { return false; }
  std::optional<server::StatsSnapshot> gather_stats(bool, StatsReady) override { return server::StatsSnapshot{}; }
  commands::ConcurrentRuns& concurrent_runs() noexcept override { return runs_; }
  base::TimePoint now() noexcept override { return reactor_.now(); }
  void warn_rate_limited(const std::string&) override {}
  void run_at(base::TimePoint deadline, std::function<void()> fn) override {
    reactor_.add_timer(deadline, std::move(fn));
  }
  const std::shared_ptr<const auth::PrincipalTable>& principals() const noexcept override { return principals_; }
  auth::RateBuckets& rate_buckets() noexcept override { return rate_buckets_; }

  void on_connection_closed(server::StreamConnection&) override { closed = true; }
  void on_timeout(server::TimeoutKind) override {}
  void on_slow_consumer(server::StreamConnection&) override { ++slow_consumers; }
  // As the shard does: at the end of the loop iteration, if it is still there.
  void flush_soon(server::StreamConnection&) override {
    reactor_.defer([this] {
      if (connection != nullptr) connection->flush_events();
    });
  }

  std::span<commands::CommandStats> command_stats() { return stats_; }

  Deferred deferred;
  SinkLog sink;
  server::StreamConnection* connection = nullptr;
  bool closed = false;
  int slow_consumers = 0;

 private:
  reactor::Reactor& reactor_;
  pubsub::ChannelTable channels_{reactor_};
  config::Config config_;
  commands::CommandRegistry registry_;
  std::vector<commands::CommandStats> stats_;
  commands::ExecStats exec_;
  commands::FileStats files_;
  std::shared_ptr<const auth::PrincipalTable> principals_ = std::make_shared<const auth::PrincipalTable>();
  auth::RateBuckets rate_buckets_;
  commands::ConcurrentRuns runs_;
  commands::PartialUploads partials_;
  exec::WorkerPool pool_;
};

// --- the client end ---------------------------------------------------------

std::string json_frame(const std::string& header, const std::string& body = "") {
  char prefix[4];
  codec::store_u32(prefix, static_cast<std::uint32_t>(header.size()), codec::ByteOrder::big);
  return std::string(prefix, 4) + header + body;
}

struct Frame {
  std::string header;
  std::string body;
};

// Splits what the client received into json frames (the reply framing).
std::vector<Frame> split_frames(const std::string& bytes) {
  std::vector<Frame> frames;
  simdjson::dom::parser parser;
  std::size_t at = 0;
  while (bytes.size() - at >= 4) {
    const std::uint32_t header_size = codec::load_u32(bytes.data() + at, codec::ByteOrder::big);
    if (bytes.size() - at < 4 + header_size) break;
    Frame frame;
    frame.header = bytes.substr(at + 4, header_size);
    std::uint64_t body_size = 0;
    simdjson::dom::element header;
    REQUIRE(parser.parse(frame.header).get(header) == simdjson::SUCCESS);
    if (header["total_size"].get_uint64().get(body_size) != simdjson::SUCCESS) body_size = 0;
    if (bytes.size() - at - 4 - header_size < body_size) break;
    frame.body = bytes.substr(at + 4 + header_size, body_size);
    frames.push_back(std::move(frame));
    at += 4 + header_size + body_size;
  }
  return frames;
}

// The daemon side (a StreamConnection on one end of a socketpair) and the
// client side (the other end, non-blocking, pumped while the loop runs).
struct Fixture {
  std::unique_ptr<reactor::Reactor> reactor = make_reactor();
  TestHost host{*reactor};
  pipeline::Dispatcher dispatcher{host, host.command_stats()};
  simdjson::dom::parser parser;
  std::shared_ptr<server::ListenerSettings> settings = std::make_shared<server::ListenerSettings>();
  base::UniqueFd client;
  buffer::MemoryBudget budget{1ULL << 30};
  std::unique_ptr<server::StreamConnection> connection;
  std::string to_send;
  std::size_t sent = 0;
  std::string received;
  bool client_reading = true;
  bool eof = false;

  explicit Fixture(std::uint32_t max_pending_replies = 1024, std::uint64_t max_event_backlog = 8ULL << 20) {
    settings->name = "test";
    settings->kind = "unix";
    settings->max_pending_replies = max_pending_replies;
    settings->max_event_backlog = max_event_backlog;
    settings->idle_timeout = std::chrono::seconds(60);
    settings->header_timeout = std::chrono::seconds(60);
    auto pair = make_socketpair();
    client = std::move(pair.b);
    connection = std::make_unique<server::StreamConnection>(*reactor, host, dispatcher, parser, std::move(pair.a),
                                                            settings, "peer", 1, budget);
    host.connection = connection.get();
    connection->start();
  }
  ~Fixture() {
    host.connection = nullptr;
    // Closed, and destroyed once its operations have completed.
    connection->abort();
    run_until(*reactor, [&] { return host.closed; });
    connection.reset();
    reactor->shut_down_backend();
  }

  // Moves bytes both ways as far as the sockets allow.
  void pump_client() {
    while (sent < to_send.size()) {
      const ssize_t n = ::send(client.get(), to_send.data() + sent, std::min<std::size_t>(to_send.size() - sent, 65536),
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    if (!client_reading) return;
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::recv(client.get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        received.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) eof = true;
      break;
    }
  }
  bool run(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return run_until(*reactor, [&] {
      pump_client();
      return done();
    }, limit);
  }
  std::vector<Frame> frames() const { return split_frames(received); }
};

}  // namespace

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
