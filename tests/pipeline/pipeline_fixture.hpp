#pragma once
// The pipeline tests' harness: a StreamConnection on one end of a real
// socketpair, served by a test CommandHost with the real registry, dispatcher
// and commands plus a few test commands; the test drives the other end.
// Included by exactly one test file per test binary.

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
  std::size_t send_limit = SIZE_MAX;  // to_send's bytes past this wait (a client keeping N requests in flight)
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
    const std::size_t sendable = std::min(to_send.size(), send_limit);
    while (sent < sendable) {
      const ssize_t n = ::send(client.get(), to_send.data() + sent, std::min<std::size_t>(sendable - sent, 65536),
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
