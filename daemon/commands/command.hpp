#pragma once
// A command: a name, a one-line summary for `help`, and what it does with a
// request. Commands registered here work; what is not built is absent, and so
// answers unknown_command.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto/reply.hpp"
#include "proto/request.hpp"

namespace framed::server {
class Server;
struct ListenerSettings;
}  // namespace framed::server
namespace framed::exec {
struct PeerCredentials;
}  // namespace framed::exec

namespace framed::commands {

struct CommandStats {
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;  // replies with ok = false
};

// Where a deferred reply goes: the requester (a connection or a datagram
// endpoint, by id: it may be gone by the time the answer is ready) and the
// request's place in that requester's reply order.
struct ReplyRoute {
  std::uint64_t requester = 0;
  std::uint64_t sequence = 0;
  CommandStats* stats = nullptr;  // the command's counters, stable for the server's life
};

// What a running command may see: the server it runs in, the listener the
// request came through, and a way to answer later.
struct CommandContext {
  server::Server& server;
  const server::ListenerSettings& listener;
  ReplyRoute route;
  bool deferred = false;
  // The peer's identity on a Unix stream socket (SO_PEERCRED, taken when it
  // connected); null on every other transport. exec's allow_uids/allow_gids.
  const exec::PeerCredentials* peer = nullptr;

  // For a command whose answer comes later (from the worker pool): it leaves
  // `reply` alone and, on the reactor thread, exactly once, hands the answer
  // to Server::deliver_reply(route, reply). The requester keeps every later
  // reply waiting behind it, so replies stay in request order, and fills in
  // the request's id itself.
  [[nodiscard]] ReplyRoute defer() noexcept {
    deferred = true;
    return route;
  }
};

class Command {
 public:
  virtual ~Command() = default;
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  [[nodiscard]] virtual std::string_view summary() const noexcept = 0;
  // Runs on the reactor thread; must not block. Fills `reply` (reset, with
  // the request's id already set), or defers it (CommandContext::defer).
  virtual void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) = 0;
};

struct RegisteredCommand {
  std::unique_ptr<Command> command;
  CommandStats stats;
};

class CommandRegistry {
 public:
  void add(std::unique_ptr<Command> command);
  [[nodiscard]] RegisteredCommand* find(std::string_view name) noexcept;
  // In registration order, for `help` and `stats`.
  [[nodiscard]] const std::vector<std::unique_ptr<RegisteredCommand>>& all() const noexcept { return commands_; }

 private:
  std::vector<std::unique_ptr<RegisteredCommand>> commands_;
  // Keys view the commands' own names, which live as long as the registry.
  std::unordered_map<std::string_view, RegisteredCommand*> by_name_;
};

// A client-chosen name (a command, an exec name) quoted for an error
// message: long enough to recognise a typo, short enough not to echo a
// megabyte of garbage back.
std::string quote_client_name(std::string_view name);

// Registers ping, echo, upper (basic.cpp) and help, stats (introspection.cpp).
void register_basic_commands(CommandRegistry& registry);
void register_introspection_commands(CommandRegistry& registry);

}  // namespace framed::commands
