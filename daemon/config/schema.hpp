#pragma once
// The keys of framed.toml as data. config.cpp validates each table of the
// file through one table of rows (name, type, bounds, where the value lands,
// whether a reload may change it); this header shows those rows to the rest
// of the daemon (the reload, which reads `reloadable`) and to the tests
// (every row is documented in config/framed.toml, every bound is enforced).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace framed::config {

enum class ValueType {
  integer,       // a TOML integer within [min, max]
  size,          // bytes: an integer or "4GiB" (units.hpp), within [min, max]
  duration,      // "10s", "1.5s", "250ms" (units.hpp)
  choice,        // one name of a names table ("tcp", "json", "info", ...)
  boolean,
  string,        // non-empty, no NUL
  path,          // a string naming a file, directory, socket or program
  address,       // "HOST:PORT" (address.hpp)
  octal_mode,    // "0660"
  string_list,   // an array of strings (argv, command names)
  id_list,       // a non-empty array of numeric uids or gids
  string_table,  // a table of strings (env)
};

struct KeySpec {
  // "daemon.workers", "listener.max_body"; command keys are "commands.*.argv"
  // since each [commands.NAME] table takes the same keys.
  std::string dotted_key;
  ValueType type;
  // integer and size keys: the inclusive range (no key takes a negative
  // value); other types: 0 and 0.
  std::uint64_t min = 0;
  std::uint64_t max = 0;
  // A SIGHUP may change it; false: it takes effect at the next start, and a
  // reload that changes it applies the rest and warns (CONFIG.md).
  bool reloadable = true;
};

// Every key the file may hold, table by table, in the order of config.cpp's
// rows.
std::vector<KeySpec> config_keys();

// Whether a reload may change `dotted_key` ("daemon.backend",
// "commands.date.timeout" or "commands.*.timeout"); false for an unknown key.
bool key_is_reloadable(std::string_view dotted_key);

}  // namespace framed::config
