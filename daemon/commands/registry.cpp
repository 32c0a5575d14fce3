#include "commands/command.hpp"

#include "auth/client_session.hpp"

namespace framed::commands {

void CommandRegistry::add(std::unique_ptr<Command> command) {
  auto entry = std::make_unique<RegisteredCommand>();
  entry->command = std::move(command);
  entry->index = commands_.size();
  entry->streams_body = entry->command->streams_body();
  entry->permission = entry->command->permission();
  by_name_.emplace(entry->command->name(), entry.get());
  commands_.push_back(std::move(entry));
}

std::string quote_client_name(std::string_view name) {
  constexpr std::size_t kMaxNameInMessage = 64;
  std::string text = "'";
  text.append(name.substr(0, kMaxNameInMessage));
  if (name.size() > kMaxNameInMessage) text.append("...");
  text.push_back('\'');
  return text;
}

const config::Principal* CommandContext::principal() const noexcept {
  return session != nullptr ? session->principal() : nullptr;
}

const RegisteredCommand* CommandRegistry::find(std::string_view name) const noexcept {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace framed::commands
