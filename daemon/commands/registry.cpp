#include "commands/command.hpp"

namespace framed::commands {

void CommandRegistry::add(std::unique_ptr<Command> command) {
  auto entry = std::make_unique<RegisteredCommand>();
  entry->command = std::move(command);
  by_name_.emplace(entry->command->name(), entry.get());
  commands_.push_back(std::move(entry));
}

RegisteredCommand* CommandRegistry::find(std::string_view name) noexcept {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace framed::commands
