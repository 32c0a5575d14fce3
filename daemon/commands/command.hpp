#pragma once
// A command: a name, a one-line summary for `help`, and what it does with a
// request. Commands registered here work; what is not built is absent, and so
// answers unknown_command.

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto/reply.hpp"
#include "proto/request.hpp"

namespace framed::server {
class Server;
struct ListenerSettings;
}  // namespace framed::server

namespace framed::commands {

// What a running command may see: the server it runs in and the listener the
// request came through.
struct CommandContext {
  server::Server& server;
  const server::ListenerSettings& listener;
};

class Command {
 public:
  virtual ~Command() = default;
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  [[nodiscard]] virtual std::string_view summary() const noexcept = 0;
  // Runs on the reactor thread; must not block. Fills `reply` (reset, with
  // the request's id already set).
  virtual void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) = 0;
};

struct CommandStats {
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;  // replies with ok = false
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

// Registers ping, echo, upper (basic.cpp) and help, stats (introspection.cpp).
void register_basic_commands(CommandRegistry& registry);
void register_introspection_commands(CommandRegistry& registry);

}  // namespace framed::commands
