// framed.toml: any text is a Config or a list of errors with positions,
// never a crash, a hang or an exception; an accepted config's listeners
// have the fields the server relies on.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const framed::config::LoadResult result = framed::config::parse_config(text, "fuzz.toml");
  if (result.config.has_value() == !result.errors.empty()) std::abort();
  if (result.config) {
    for (const auto& listener : result.config->listeners) {
      if (listener.name.empty()) std::abort();
    }
  }
  for (const auto& error : result.errors) {
    if (error.message.empty()) std::abort();
  }
  return 0;
}
