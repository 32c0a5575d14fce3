// ping, echo, upper: the classic socket-tutorial commands, answered on the
// reactor thread because they cost less than a hand-off to a worker would.

#include <algorithm>

#include "commands/command.hpp"

namespace framed::commands {
namespace {

class Ping final : public Command {
 public:
  std::string_view name() const noexcept override { return "ping"; }
  std::string_view summary() const noexcept override { return "liveness check: replies pong"; }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext&) override {
    if (request.mode == proto::RequestMode::simple) {
      reply.body = "pong";
    } else {
      reply.add_field("pong", true);
    }
  }
};

class Echo final : public Command {
 public:
  std::string_view name() const noexcept override { return "echo"; }
  std::string_view summary() const noexcept override { return "replies with the request body, byte for byte"; }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext&) override {
    // The reply is encoded before the request's bytes are consumed, so the
    // body can be a view of them: no copy.
    reply.body = request.body;
  }
};

class Upper final : public Command {
 public:
  std::string_view name() const noexcept override { return "upper"; }
  std::string_view summary() const noexcept override { return "replies with the body, ASCII letters upper-cased"; }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext&) override {
    reply.body_storage.assign(request.body);
    // ASCII only, by contract: bytes of multi-byte UTF-8 sequences are all
    // >= 0x80 and stay untouched, so the output stays valid UTF-8.
    std::transform(reply.body_storage.begin(), reply.body_storage.end(), reply.body_storage.begin(),
                   [](char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; });
    reply.use_storage_as_body();
  }
};

}  // namespace

void register_basic_commands(CommandRegistry& registry) {
  registry.add(std::make_unique<Ping>());
  registry.add(std::make_unique<Echo>());
  registry.add(std::make_unique<Upper>());
}

}  // namespace framed::commands
