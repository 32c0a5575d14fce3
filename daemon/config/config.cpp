#include "config/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <exception>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <utility>

#include "base/errno_text.hpp"
#include "base/unique_fd.hpp"
#include "config/address.hpp"
#include "config/units.hpp"

namespace framed::config {
namespace {

// ---------------------------------------------------------------------------
// Enum names. One table per enum serves parsing, messages and to_string().

template <typename E>
struct EnumName {
  std::string_view name;
  E value;
};

constexpr std::array<EnumName<ListenerKind>, 4> kKinds{{
    {"tcp", ListenerKind::tcp},
    {"udp", ListenerKind::udp},
    {"unix", ListenerKind::unix_stream},
    {"unix_dgram", ListenerKind::unix_dgram},
}};
constexpr std::array<EnumName<Framing>, 4> kFramings{{
    {"json", Framing::json},
    {"length", Framing::length},
    {"line", Framing::line},
    {"datagram", Framing::datagram},
}};
constexpr std::array<EnumName<Payload>, 2> kPayloads{{
    {"text", Payload::text},
    {"json", Payload::json},
}};
constexpr std::array<EnumName<ByteOrder>, 2> kByteOrders{{
    {"big", ByteOrder::big},
    {"little", ByteOrder::little},
}};
constexpr std::array<EnumName<LogLevel>, 5> kLogLevels{{
    {"trace", LogLevel::trace},
    {"debug", LogLevel::debug},
    {"info", LogLevel::info},
    {"warn", LogLevel::warn},
    {"error", LogLevel::error},
}};
constexpr std::array<EnumName<reactor::BackendChoice>, 3> kBackends{{
    {"auto", reactor::BackendChoice::automatic},
    {"io_uring", reactor::BackendChoice::io_uring},
    {"epoll", reactor::BackendChoice::epoll},
}};

template <typename E, std::size_t N>
std::string_view name_of(const std::array<EnumName<E>, N>& names, E value) noexcept {
  for (const auto& entry : names) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

// `"a", "b" or "c"`
template <typename E, std::size_t N>
std::string one_of(const std::array<EnumName<E>, N>& names) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) out += (i + 1 == N) ? " or " : ", ";
    out += '"';
    out.append(names[i].name);
    out += '"';
  }
  return out;
}

// ---------------------------------------------------------------------------
// Text helpers.

template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

std::string quoted(std::string_view text) { return cat("\"", text, "\""); }

// Levenshtein distance, for "did you mean" hints on misspelt keys.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The closest known key, when it is close enough to be a typo: at most two
// edits, and fewer than half the key's length so that "ab" never suggests "cd".
std::string_view closest(std::string_view key, std::span<const std::string_view> known) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (const auto candidate : known) {
    const std::size_t distance = edit_distance(key, candidate);
    if (distance < best_distance && distance * 2 < std::max(key.size(), candidate.size())) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string_view type_phrase(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// sun_path holds 108 bytes: a filesystem path needs its terminating NUL, an
// abstract name ("@name") spends the first byte on the leading NUL.
constexpr std::size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 1;

// A worker count past this is a typo, not a machine: each worker is a thread
// with its own stack, and exec work is bounded by processes, not threads.
constexpr std::int64_t kMaxWorkers = 1024;

// listen(2) silently caps its backlog at net.core.somaxconn (4096 by default
// since Linux 5.4); 65535 is the largest value that sysctl accepts.
constexpr std::int64_t kMaxBacklog = 65535;

// The json framing's header length is a u32.
constexpr std::uint64_t kMaxHeader = std::numeric_limits<std::uint32_t>::max();

// A config file this large is not a config file (e.g. --config /dev/zero).
constexpr std::size_t kMaxConfigFileBytes = 16U << 20;

// Each queued exec job holds its request body (up to max_body) until a
// worker takes it: a queue longer than this is memory, not throughput.
constexpr std::int64_t kMaxQueuedJobs = 1 << 20;

// The kernel's default fs.nr_open: RLIMIT_NOFILE cannot go higher.
constexpr std::int64_t kMaxOpenFiles = 1 << 20;

// Below this an address-space limit stops the dynamic loader itself, and
// every run would fail with a confusing error.
constexpr std::uint64_t kMinAddressSpace = 16U << 20;

// uid_t and gid_t are 32-bit; (uid_t)-1 means "no change" to the kernel and
// is nobody's id.
constexpr std::int64_t kMaxId = std::numeric_limits<std::uint32_t>::max() - 1;

// ---------------------------------------------------------------------------
// Known keys, per table.

constexpr std::array<std::string_view, 5> kTopKeys{"daemon", "limits", "listener", "files",
                                                   "commands"};
constexpr std::array<std::string_view, 6> kDaemonKeys{"workers", "backend", "log_level",
                                                      "max_connections", "shutdown_timeout",
                                                      "max_queued_jobs"};
constexpr std::array<std::string_view, 5> kLimitKeys{"max_header", "max_body", "idle_timeout",
                                                     "header_timeout", "max_pending_replies"};
constexpr std::array<std::string_view, 16> kListenerKeys{
    "kind",       "name",     "address",      "path",           "mode",
    "framing",    "payload",  "byte_order",   "command",        "backlog",
    "max_header", "max_body", "idle_timeout", "header_timeout", "max_pending_replies",
    "allow_commands"};
constexpr std::array<std::string_view, 2> kFilesKeys{"root", "max_file_size"};
constexpr std::array<std::string_view, 12> kCommandKeys{
    "argv",       "timeout",   "max_output",    "allow_args",     "env",        "cwd",
    "rlimit_cpu", "rlimit_as", "rlimit_nofile", "max_concurrent", "allow_uids", "allow_gids"};

// Letters, digits, '_', '-' and '.': what a [commands.NAME] may be called.
bool is_plain_name(std::string_view name) {
  return !name.empty() && name.find_first_not_of(
                              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789_.-") == std::string_view::npos;
}

// One key of a table, with both positions: the key for "this key is wrong
// here", the value for "this value is wrong".
struct Entry {
  const toml::key* key = nullptr;
  const toml::node* node = nullptr;
  explicit operator bool() const noexcept { return node != nullptr; }
};

Entry lookup(const toml::table& table, std::string_view name) {
  const auto it = table.find(name);
  if (it == table.end()) return {};
  return Entry{&it->first, &it->second};
}

bool is_stream(ListenerKind kind) {
  return kind == ListenerKind::tcp || kind == ListenerKind::unix_stream;
}
bool is_inet(ListenerKind kind) { return kind == ListenerKind::tcp || kind == ListenerKind::udp; }

// ---------------------------------------------------------------------------
// The validator: walks the parsed tree once, fills a Config, and records
// every problem with its position instead of stopping at the first.

class Validator {
 public:
  explicit Validator(std::string file) : file_(std::move(file)) {}

  Config build(const toml::table& root);

  // Every error, in file order (tables iterate by key name, not by position).
  std::vector<ConfigError> take_errors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return std::move(errors_);
  }

 private:
  void error(const toml::source_region& where, std::string message) {
    errors_.push_back(ConfigError{file_, where.begin.line, where.begin.column, std::move(message)});
  }
  void error(const toml::node& node, std::string message) {
    error(node.source(), std::move(message));
  }
  void error(const toml::key& key, std::string message) { error(key.source(), std::move(message)); }

  void wrong_type(const toml::node& node, std::string_view label, std::string_view expected) {
    error(node, cat(label, ": expected ", expected, ", got ", type_phrase(node)));
  }

  void check_keys(const toml::table& table, std::span<const std::string_view> known,
                  std::string_view where);

  const toml::table* as_table(const Entry& entry, std::string_view label, std::string_view header);

  std::optional<std::string> read_string(const toml::node& node, std::string_view label);
  std::optional<bool> read_bool(const toml::node& node, std::string_view label);
  std::optional<std::int64_t> read_integer(const toml::node& node, std::string_view label,
                                           std::int64_t min, std::int64_t max);
  std::optional<std::uint64_t> read_size(const toml::node& node, std::string_view label,
                                         std::uint64_t min, std::uint64_t max,
                                         std::string_view max_reason);
  std::optional<std::chrono::nanoseconds> read_duration(const toml::node& node,
                                                        std::string_view label, bool allow_zero);
  template <typename E, std::size_t N>
  std::optional<E> read_enum(const toml::node& node, std::string_view label,
                             const std::array<EnumName<E>, N>& names);

  void read_daemon(const toml::table& table, Daemon& daemon);
  void read_limits(const toml::table& table, std::string_view prefix, Limits& limits);
  void read_listeners(const toml::array& array, const Limits& base,
                      std::vector<Listener>& listeners);
  std::optional<Listener> read_listener(const toml::table& table, const Limits& base);
  std::optional<std::uint32_t> read_mode(const toml::node& node, std::string_view label);
  std::optional<std::string> read_unix_path(const toml::node& node, std::string_view label);
  void read_files(const toml::table& table, Files& files);
  void read_commands(const toml::table& table, std::map<std::string, Command>& commands);
  std::optional<Command> read_command(const toml::table& table, const std::string& name);
  bool check_executable(const toml::node& node, const std::string& path, std::string_view label);
  std::optional<std::vector<std::string>> read_allow_commands(const toml::node& node);
  void check_allowed_commands_exist(const toml::table* commands);
  void read_command_extras(const toml::table& table, const std::string& label, Command& command);
  std::optional<std::map<std::string, std::string>> read_env(const toml::node& node,
                                                             std::string_view label);
  std::optional<std::string> read_directory(const toml::node& node, std::string_view label);
  std::optional<std::vector<std::uint32_t>> read_ids(const toml::node& node,
                                                     std::string_view label);

  std::string file_;
  std::vector<ConfigError> errors_;
  // Names in listeners' allow_commands, checked against [commands] once it
  // has been read (it may come later in the file).
  std::vector<std::pair<const toml::node*, std::string>> allowed_command_refs_;
};

void Validator::check_keys(const toml::table& table, std::span<const std::string_view> known,
                           std::string_view where) {
  for (const auto& [key, value] : table) {
    const std::string_view name = key.str();
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string message = cat("unknown key '", name, "' in ", where);
    const std::string_view hint = closest(name, known);
    if (!hint.empty()) message += cat("; did you mean '", hint, "'?");
    error(key, std::move(message));
  }
}

const toml::table* Validator::as_table(const Entry& entry, std::string_view label,
                                       std::string_view header) {
  if (!entry) return nullptr;
  if (const auto* table = entry.node->as_table()) return table;
  error(*entry.node,
        cat(label, ": expected a table (", header, "), got ", type_phrase(*entry.node)));
  return nullptr;
}

std::optional<std::string> Validator::read_string(const toml::node& node, std::string_view label) {
  const auto* value = node.as_string();
  if (value == nullptr) {
    wrong_type(node, label, "a string");
    return std::nullopt;
  }
  const std::string& text = value->get();
  if (text.empty()) {
    error(node, cat(label, ": must not be empty"));
    return std::nullopt;
  }
  // Everything here ends up in a C string (a path, an argv item, a name).
  if (text.find('\0') != std::string::npos) {
    error(node, cat(label, ": must not contain a NUL character"));
    return std::nullopt;
  }
  return text;
}

std::optional<bool> Validator::read_bool(const toml::node& node, std::string_view label) {
  if (const auto* value = node.as_boolean()) return value->get();
  wrong_type(node, label, "true or false");
  return std::nullopt;
}

std::optional<std::int64_t> Validator::read_integer(const toml::node& node, std::string_view label,
                                                    std::int64_t min, std::int64_t max) {
  const auto* value = node.as_integer();
  if (value == nullptr) {
    wrong_type(node, label, "an integer");
    return std::nullopt;
  }
  const std::int64_t number = value->get();
  if (number < min || number > max) {
    if (max == std::numeric_limits<std::int64_t>::max()) {
      error(node, cat(label, ": must be at least ", std::to_string(min), ", got ",
                      std::to_string(number)));
    } else {
      error(node, cat(label, ": must be from ", std::to_string(min), " to ", std::to_string(max),
                      ", got ", std::to_string(number)));
    }
    return std::nullopt;
  }
  return number;
}

std::optional<std::uint64_t> Validator::read_size(const toml::node& node, std::string_view label,
                                                  std::uint64_t min, std::uint64_t max,
                                                  std::string_view max_reason) {
  std::uint64_t bytes = 0;
  if (const auto* integer = node.as_integer()) {
    if (integer->get() < 0) {
      error(node, cat(label, ": must not be negative, got ", std::to_string(integer->get())));
      return std::nullopt;
    }
    bytes = static_cast<std::uint64_t>(integer->get());
  } else if (const auto* string = node.as_string()) {
    auto parsed = parse_size(string->get());
    if (!parsed.value) {
      error(node, cat(label, ": ", parsed.error));
      return std::nullopt;
    }
    bytes = *parsed.value;
  } else {
    wrong_type(node, label, "a size (an integer number of bytes, or a string like \"4GiB\")");
    return std::nullopt;
  }
  if (bytes < min) {
    error(node, cat(label, ": must be at least ", std::to_string(min), " bytes, got ",
                    std::to_string(bytes)));
    return std::nullopt;
  }
  if (bytes > max) {
    error(node, cat(label, ": must be at most ", std::to_string(max), " bytes (", max_reason,
                    "), got ", std::to_string(bytes)));
    return std::nullopt;
  }
  return bytes;
}

std::optional<std::chrono::nanoseconds> Validator::read_duration(const toml::node& node,
                                                                 std::string_view label,
                                                                 bool allow_zero) {
  const auto* string = node.as_string();
  if (string == nullptr) {
    wrong_type(node, label, "a duration string like \"10s\" (units: ms, s, m, h)");
    return std::nullopt;
  }
  auto parsed = parse_duration(string->get());
  if (!parsed.value) {
    error(node, cat(label, ": ", parsed.error));
    return std::nullopt;
  }
  if (!allow_zero && parsed.value->count() == 0) {
    error(node, cat(label, ": must be greater than zero"));
    return std::nullopt;
  }
  return parsed.value;
}

template <typename E, std::size_t N>
std::optional<E> Validator::read_enum(const toml::node& node, std::string_view label,
                                      const std::array<EnumName<E>, N>& names) {
  const auto* string = node.as_string();
  if (string == nullptr) {
    wrong_type(node, label, cat("one of ", one_of(names)));
    return std::nullopt;
  }
  for (const auto& entry : names) {
    if (entry.name == string->get()) return entry.value;
  }
  error(node, cat(label, ": unknown value ", quoted(string->get()), "; expected ", one_of(names)));
  return std::nullopt;
}

// ---------------------------------------------------------------------------

Config Validator::build(const toml::table& root) {
  Config config;
  check_keys(root, kTopKeys, "the top level");

  if (const auto* daemon = as_table(lookup(root, "daemon"), "daemon", "[daemon]")) {
    read_daemon(*daemon, config.daemon);
  }
  // [limits] before the listeners: each listener starts from it.
  if (const auto* limits = as_table(lookup(root, "limits"), "limits", "[limits]")) {
    check_keys(*limits, kLimitKeys, "[limits]");
    read_limits(*limits, "limits", config.limits);
  }
  if (const Entry listeners = lookup(root, "listener")) {
    if (const auto* array = listeners.node->as_array()) {
      read_listeners(*array, config.limits, config.listeners);
    } else {
      error(*listeners.node, cat("listener: expected an array of tables ([[listener]]), got ",
                                 type_phrase(*listeners.node)));
    }
  }
  if (const Entry files_entry = lookup(root, "files")) {
    if (const auto* files = as_table(files_entry, "files", "[files]")) {
      Files value;
      read_files(*files, value);
      config.files = std::move(value);
    }
  }
  const auto* commands = as_table(lookup(root, "commands"), "commands", "[commands.NAME]");
  if (commands != nullptr) read_commands(*commands, config.commands);
  check_allowed_commands_exist(commands);
  return config;
}

void Validator::read_daemon(const toml::table& table, Daemon& daemon) {
  check_keys(table, kDaemonKeys, "[daemon]");
  if (const Entry e = lookup(table, "workers")) {
    if (auto v = read_integer(*e.node, "daemon.workers", 0, kMaxWorkers)) {
      daemon.workers = static_cast<unsigned>(*v);
    }
  }
  if (const Entry e = lookup(table, "backend")) {
    // The reactor owns the spelling; kBackends only words the message.
    if (const auto* string = e.node->as_string()) {
      if (auto choice = reactor::parse_backend_choice(string->get())) {
        daemon.backend = *choice;
      } else {
        error(*e.node, cat("daemon.backend: unknown value ", quoted(string->get()), "; expected ",
                           one_of(kBackends)));
      }
    } else {
      wrong_type(*e.node, "daemon.backend", cat("one of ", one_of(kBackends)));
    }
  }
  if (const Entry e = lookup(table, "log_level")) {
    if (auto v = read_enum(*e.node, "daemon.log_level", kLogLevels)) daemon.log_level = *v;
  }
  if (const Entry e = lookup(table, "max_connections")) {
    if (auto v = read_integer(*e.node, "daemon.max_connections", 1,
                              std::numeric_limits<std::uint32_t>::max())) {
      daemon.max_connections = static_cast<std::uint32_t>(*v);
    }
  }
  if (const Entry e = lookup(table, "shutdown_timeout")) {
    // Zero is meaningful: do not wait for requests in flight.
    if (auto v = read_duration(*e.node, "daemon.shutdown_timeout", true)) {
      daemon.shutdown_timeout = *v;
    }
  }
  if (const Entry e = lookup(table, "max_queued_jobs")) {
    // Zero is meaningful: only what an idle worker takes at once.
    if (auto v = read_integer(*e.node, "daemon.max_queued_jobs", 0, kMaxQueuedJobs)) {
      daemon.max_queued_jobs = static_cast<std::uint32_t>(*v);
    }
  }
}

// Reads whichever [limits] keys `table` has into `limits`; the caller has
// already rejected unknown keys.
void Validator::read_limits(const toml::table& table, std::string_view prefix, Limits& limits) {
  const auto label = [&](std::string_view key) { return cat(prefix, ".", key); };
  if (const Entry e = lookup(table, "max_header")) {
    if (auto v = read_size(*e.node, label("max_header"), 1, kMaxHeader,
                           "a json header length is a u32")) {
      limits.max_header = *v;
    }
  }
  if (const Entry e = lookup(table, "max_body")) {
    if (auto v = read_size(*e.node, label("max_body"), 0, std::numeric_limits<std::uint64_t>::max(),
                           "")) {
      limits.max_body = *v;
    }
  }
  if (const Entry e = lookup(table, "idle_timeout")) {
    if (auto v = read_duration(*e.node, label("idle_timeout"), false)) limits.idle_timeout = *v;
  }
  if (const Entry e = lookup(table, "header_timeout")) {
    if (auto v = read_duration(*e.node, label("header_timeout"), false)) {
      limits.header_timeout = *v;
    }
  }
  if (const Entry e = lookup(table, "max_pending_replies")) {
    if (auto v = read_integer(*e.node, label("max_pending_replies"), 1,
                              std::numeric_limits<std::uint32_t>::max())) {
      limits.max_pending_replies = static_cast<std::uint32_t>(*v);
    }
  }
}

void Validator::read_listeners(const toml::array& array, const Limits& base,
                               std::vector<Listener>& listeners) {
  // Where each name and each endpoint was first seen, to report clashes.
  struct Seen {
    std::uint32_t line;
    bool default_name;
  };
  std::map<std::string, Seen> names;
  std::map<std::string, std::uint32_t> endpoints;

  for (const auto& element : array) {
    const auto* table = element.as_table();
    if (table == nullptr) {
      error(element, cat("listener: expected a table ([[listener]]), got ", type_phrase(element)));
      continue;
    }
    auto listener = read_listener(*table, base);
    if (!listener) continue;

    const Entry name_entry = lookup(*table, "name");
    const toml::node& name_node = name_entry ? *name_entry.node : *table;
    const bool default_name = !name_entry;
    const auto [name_it, name_new] =
        names.try_emplace(listener->name, Seen{name_node.source().begin.line, default_name});
    // Two default names only clash when the endpoints do, which is reported
    // below; or when both use port 0, which is no clash at all.
    if (!name_new && !(default_name && name_it->second.default_name)) {
      error(name_node, cat("listener.name: duplicate listener name ", quoted(listener->name),
                           " (first used at line ", std::to_string(name_it->second.line), ")"));
    }

    // Endpoint clashes: the same kind on the same address (port 0 excepted:
    // the kernel gives each its own port), or any two Unix sockets on one
    // path (one file cannot be both a stream and a datagram socket).
    std::string endpoint;
    std::string message;
    const toml::node* endpoint_node = nullptr;
    if (is_inet(listener->kind)) {
      const auto parsed = parse_address(listener->address);
      if (parsed.value && parsed.value->port != 0) {
        const std::string canonical = parsed.value->canonical();
        endpoint = cat(to_string(listener->kind), " ", canonical);
        endpoint_node = lookup(*table, "address").node;
        message =
            cat("listener.address: ", to_string(listener->kind), " ", quoted(listener->address));
        if (canonical != listener->address) message += cat(" (", canonical, ")");
      }
    } else {
      endpoint = cat("unix ", listener->path);
      endpoint_node = lookup(*table, "path").node;
      message = cat("listener.path: ", quoted(listener->path));
    }
    if (endpoint_node != nullptr) {
      const auto [it, inserted] =
          endpoints.try_emplace(endpoint, endpoint_node->source().begin.line);
      if (!inserted) {
        error(*endpoint_node, cat(message, " is already used by the listener at line ",
                                  std::to_string(it->second)));
      }
    }
    listeners.push_back(std::move(*listener));
  }
}

std::optional<std::uint32_t> Validator::read_mode(const toml::node& node, std::string_view label) {
  constexpr std::string_view kExpected = "an octal string like \"0660\"";
  const auto* string = node.as_string();
  if (string == nullptr) {
    wrong_type(node, label, kExpected);
    return std::nullopt;
  }
  const std::string& text = string->get();
  // 3 or 4 octal digits; only permission bits (setuid and friends mean
  // nothing on a socket).
  const bool octal = text.size() >= 3 && text.size() <= 4 &&
                     text.find_first_not_of("01234567") == std::string::npos;
  std::uint32_t mode = 0;
  if (octal) {
    for (const char c : text) mode = mode * 8 + static_cast<std::uint32_t>(c - '0');
  }
  if (!octal || mode > 0777) {
    error(node, cat(label, ": expected ", kExpected, " (permission bits, at most \"0777\"), got ",
                    quoted(text)));
    return std::nullopt;
  }
  return mode;
}

std::optional<std::string> Validator::read_unix_path(const toml::node& node,
                                                     std::string_view label) {
  auto path = read_string(node, label);
  if (!path) return std::nullopt;
  if (*path == "@") {
    error(node, cat(label, ": an abstract socket needs a name after '@'"));
    return std::nullopt;
  }
  if (path->size() > kMaxUnixPath) {
    error(node, cat(label, ": too long for a Unix socket (", std::to_string(path->size()),
                    " bytes; at most ", std::to_string(kMaxUnixPath), ")"));
    return std::nullopt;
  }
  return path;
}

std::optional<Listener> Validator::read_listener(const toml::table& table, const Limits& base) {
  check_keys(table, kListenerKeys, "[[listener]]");
  const std::size_t errors_before = errors_.size();
  Listener listener;
  listener.limits = base;
  read_limits(table, "listener", listener.limits);

  const Entry kind_entry = lookup(table, "kind");
  std::optional<ListenerKind> kind;
  if (kind_entry) {
    kind = read_enum(*kind_entry.node, "listener.kind", kKinds);
  } else {
    error(table, cat("[[listener]]: missing required key 'kind' (", one_of(kKinds), ")"));
  }

  const Entry name = lookup(table, "name");
  const Entry address = lookup(table, "address");
  const Entry path = lookup(table, "path");
  const Entry mode = lookup(table, "mode");
  const Entry framing = lookup(table, "framing");
  const Entry payload = lookup(table, "payload");
  const Entry byte_order = lookup(table, "byte_order");
  const Entry command = lookup(table, "command");
  const Entry backlog = lookup(table, "backlog");
  const Entry allow_commands = lookup(table, "allow_commands");

  // Values first, each on its own, so that a bad value is reported even when
  // the kind is missing or wrong.
  if (name) {
    if (auto v = read_string(*name.node, "listener.name")) listener.name = std::move(*v);
  }
  if (address) {
    if (auto v = read_string(*address.node, "listener.address")) {
      const auto parsed = parse_address(*v);
      if (parsed.value) {
        listener.address = std::move(*v);
      } else {
        error(*address.node, cat("listener.address: ", parsed.error));
      }
    }
  }
  if (path) {
    if (auto v = read_unix_path(*path.node, "listener.path")) listener.path = std::move(*v);
  }
  if (mode) {
    if (auto v = read_mode(*mode.node, "listener.mode")) listener.mode = *v;
  }
  std::optional<Framing> framing_value;
  if (framing) framing_value = read_enum(*framing.node, "listener.framing", kFramings);
  if (payload) {
    if (auto v = read_enum(*payload.node, "listener.payload", kPayloads)) listener.payload = *v;
  }
  if (byte_order) {
    if (auto v = read_enum(*byte_order.node, "listener.byte_order", kByteOrders)) {
      listener.byte_order = *v;
    }
  }
  if (command) {
    if (auto v = read_string(*command.node, "listener.command")) {
      if (v->find_first_of(" \t\r\n") != std::string::npos) {
        error(*command.node,
              cat("listener.command: a command name has no spaces, got ", quoted(*v)));
      } else {
        listener.command = std::move(*v);
      }
    }
  }
  if (backlog) {
    if (auto v = read_integer(*backlog.node, "listener.backlog", 1, kMaxBacklog)) {
      listener.backlog = static_cast<int>(*v);
    }
  }
  if (allow_commands) listener.allow_commands = read_allow_commands(*allow_commands.node);

  if (!kind) return std::nullopt;
  listener.kind = *kind;
  const std::string_view kind_name = to_string(*kind);

  // Which keys this kind takes.
  if (is_inet(*kind)) {
    if (!address) {
      error(table, cat("[[listener]]: a ", kind_name,
                       " listener needs 'address', e.g. address = \"127.0.0.1:9000\""));
    }
    if (path) {
      error(*path.key,
            cat("listener.path: a ", kind_name, " listener takes 'address', not 'path'"));
    }
    if (mode) {
      error(*mode.key, "listener.mode: applies only to unix and unix_dgram listeners");
    }
  } else {
    if (!path) {
      error(table, cat("[[listener]]: a ", kind_name,
                       " listener needs 'path', e.g. path = \"/run/framed/framed.sock\""));
    }
    if (address) {
      error(*address.key,
            cat("listener.address: a ", kind_name, " listener takes 'path', not 'address'"));
    }
    if (mode && !listener.path.empty() && listener.path.front() == '@') {
      error(*mode.key, "listener.mode: an abstract socket (\"@name\") has no file to chmod");
    }
  }
  if (backlog && !is_stream(*kind)) {
    error(*backlog.key, cat("listener.backlog: a ", kind_name,
                            " listener does not listen(); backlog applies to tcp and unix"));
  }

  // Framing: json for streams and datagram for datagram sockets by default;
  // a datagram socket has no byte stream to frame, and a stream no datagrams.
  if (framing_value) {
    if (is_stream(*kind) && *framing_value == Framing::datagram) {
      error(*framing.node, cat("listener.framing: \"datagram\" is for udp and unix_dgram "
                               "listeners; a ",
                               kind_name, " listener takes \"json\", \"length\" or \"line\""));
      framing_value.reset();
    } else if (!is_stream(*kind) && *framing_value != Framing::datagram) {
      error(*framing.node,
            cat("listener.framing: a ", kind_name, " listener's framing must be \"datagram\", got ",
                quoted(to_string(*framing_value)), " (payload = \"json\" carries json frames)"));
      framing_value.reset();
    } else {
      listener.framing = *framing_value;
    }
  } else if (!framing) {
    listener.framing = is_stream(*kind) ? Framing::json : Framing::datagram;
    framing_value = listener.framing;
  }

  // Keys that mean something only with some framings: set elsewhere, they
  // would be silently ignored, which is what unknown keys must never be.
  if (framing_value) {
    const Framing f = *framing_value;
    if (payload && f != Framing::datagram) {
      error(*payload.key,
            "listener.payload: applies only to datagram framing (udp and "
            "unix_dgram listeners)");
    }
    const bool text_datagram = f == Framing::datagram && listener.payload == Payload::text;
    if (byte_order && (f == Framing::line || text_datagram)) {
      error(*byte_order.key, cat("listener.byte_order: has no effect with ",
                                 text_datagram ? "text datagram payloads" : "\"line\" framing",
                                 " (no length fields)"));
    }
    const bool json_frames =
        f == Framing::json || (f == Framing::datagram && listener.payload == Payload::json);
    if (command && json_frames) {
      error(*command.key,
            "listener.command: applies only to \"length\", \"line\" and text "
            "datagram listeners (a json header names its own cmd)");
    }
  }

  if (listener.name.empty() && !name) {
    listener.name = cat(kind_name, ":", is_inet(*kind) ? listener.address : listener.path);
  }
  if (errors_.size() != errors_before) return std::nullopt;
  return listener;
}

void Validator::read_files(const toml::table& table, Files& files) {
  check_keys(table, kFilesKeys, "[files]");
  if (const Entry e = lookup(table, "root")) {
    if (auto v = read_string(*e.node, "files.root")) files.root = std::move(*v);
  } else {
    error(table,
          "[files]: missing required key 'root' (the directory that put, get and list "
          "work in; remove [files] to disable them)");
  }
  if (const Entry e = lookup(table, "max_file_size")) {
    if (auto v = read_size(*e.node, "files.max_file_size", 1,
                           std::numeric_limits<std::uint64_t>::max(), "")) {
      files.max_file_size = *v;
    }
  }
}

void Validator::read_commands(const toml::table& table, std::map<std::string, Command>& commands) {
  for (const auto& [key, value] : table) {
    const std::string name(key.str());
    const std::string label = cat("commands.", name);
    const auto* command_table = value.as_table();
    if (command_table == nullptr) {
      error(value, cat(label, ": expected a table ([", label, "]), got ", type_phrase(value)));
      continue;
    }
    // `exec NAME ARG...` splits on spaces in the simple framings, and names
    // show up in logs and stats: keep them to one plain word.
    const bool plain = is_plain_name(name);
    if (!plain) {
      error(key, cat(label, ": a command name may hold only letters, digits, '_', '-' and '.'"));
    }
    auto command = read_command(*command_table, name);
    if (plain && command) commands.emplace(name, std::move(*command));
  }
}

std::optional<Command> Validator::read_command(const toml::table& table, const std::string& name) {
  const std::string label = cat("commands.", name);
  const std::size_t errors_before = errors_.size();
  check_keys(table, kCommandKeys, cat("[", label, "]"));
  Command command;
  command.name = name;

  if (const Entry e = lookup(table, "argv")) {
    const auto* argv = e.node->as_array();
    const std::string argv_label = cat(label, ".argv");
    if (argv == nullptr) {
      wrong_type(*e.node, argv_label, "an array of strings");
    } else if (argv->empty()) {
      error(*e.node, cat(argv_label, ": must not be empty; argv[0] is the program to run"));
    } else {
      for (std::size_t i = 0; i < argv->size(); ++i) {
        const toml::node& item = *argv->get(i);
        const std::string item_label = cat(argv_label, "[", std::to_string(i), "]");
        std::optional<std::string> text;
        if (i > 0 && item.is_string() && item.as_string()->get().empty()) {
          text = std::string();  // an empty argument is a legitimate argument
        } else {
          text = read_string(item, item_label);
        }
        if (!text) continue;
        if (i == 0 && !check_executable(item, *text, item_label)) continue;
        command.argv.push_back(std::move(*text));
      }
    }
  } else {
    error(table, cat("[", label,
                     "]: missing required key 'argv' (the program and its fixed "
                     "arguments, e.g. argv = [\"/bin/date\"])"));
  }
  if (const Entry e = lookup(table, "timeout")) {
    if (auto v = read_duration(*e.node, cat(label, ".timeout"), false)) command.timeout = *v;
  }
  if (const Entry e = lookup(table, "max_output")) {
    if (auto v = read_size(*e.node, cat(label, ".max_output"), 0,
                           std::numeric_limits<std::uint64_t>::max(), "")) {
      command.max_output = *v;
    }
  }
  if (const Entry e = lookup(table, "allow_args")) {
    if (auto v = read_bool(*e.node, cat(label, ".allow_args"))) command.allow_args = *v;
  }
  read_command_extras(table, label, command);
  if (errors_.size() != errors_before) return std::nullopt;
  return command;
}

// The keys that shape the child's world and who may run it.
void Validator::read_command_extras(const toml::table& table, const std::string& label,
                                    Command& command) {
  if (const Entry e = lookup(table, "env")) {
    if (auto v = read_env(*e.node, cat(label, ".env"))) command.env = std::move(*v);
  }
  if (const Entry e = lookup(table, "cwd")) {
    if (auto v = read_directory(*e.node, cat(label, ".cwd"))) command.cwd = std::move(*v);
  }
  if (const Entry e = lookup(table, "rlimit_cpu")) {
    const std::string key = cat(label, ".rlimit_cpu");
    if (auto v = read_duration(*e.node, key, false)) {
      // RLIMIT_CPU counts whole seconds: round up, never to zero.
      if (*v < std::chrono::seconds(1)) {
        error(*e.node, cat(key, ": must be at least 1s (the limit counts whole seconds)"));
      } else {
        command.rlimit_cpu = static_cast<std::uint64_t>(
            std::chrono::ceil<std::chrono::seconds>(*v).count());
      }
    }
  }
  if (const Entry e = lookup(table, "rlimit_as")) {
    if (auto v = read_size(*e.node, cat(label, ".rlimit_as"), kMinAddressSpace,
                           std::numeric_limits<std::uint64_t>::max(), "")) {
      command.rlimit_as = *v;
    }
  }
  if (const Entry e = lookup(table, "rlimit_nofile")) {
    if (auto v = read_integer(*e.node, cat(label, ".rlimit_nofile"), 3, kMaxOpenFiles)) {
      command.rlimit_nofile = static_cast<std::uint64_t>(*v);
    }
  }
  if (const Entry e = lookup(table, "max_concurrent")) {
    if (auto v = read_integer(*e.node, cat(label, ".max_concurrent"), 1,
                              std::numeric_limits<std::uint32_t>::max())) {
      command.max_concurrent = static_cast<std::uint32_t>(*v);
    }
  }
  if (const Entry e = lookup(table, "allow_uids")) {
    if (auto v = read_ids(*e.node, cat(label, ".allow_uids"))) command.allow_uids = std::move(*v);
  }
  if (const Entry e = lookup(table, "allow_gids")) {
    if (auto v = read_ids(*e.node, cat(label, ".allow_gids"))) command.allow_gids = std::move(*v);
  }
}

// env = { NAME = "value", ... }: the child's whole environment.
std::optional<std::map<std::string, std::string>> Validator::read_env(const toml::node& node,
                                                                      std::string_view label) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    wrong_type(node, label,
               "a table of strings, e.g. { PATH = \"/usr/bin:/bin\", LANG = \"C.UTF-8\" }");
    return std::nullopt;
  }
  const std::size_t errors_before = errors_.size();
  std::map<std::string, std::string> env;
  for (const auto& [key, value] : *table) {
    const std::string_view name = key.str();
    const std::string item_label = cat(label, ".", name);
    // "A=B" as a name would smuggle in a second variable; NUL ends a C string.
    if (name.find_first_of(std::string_view("=\0", 2)) != std::string_view::npos) {
      error(key, cat(item_label, ": a variable name may not contain '=' or NUL"));
      continue;
    }
    const auto* text = value.as_string();
    if (text == nullptr) {
      wrong_type(value, item_label, "a string");
      continue;
    }
    if (text->get().find('\0') != std::string::npos) {
      error(value, cat(item_label, ": must not contain a NUL character"));
      continue;
    }
    env.emplace(std::string(name), text->get());  // an empty value is a legitimate value
  }
  if (errors_.size() != errors_before) return std::nullopt;
  return env;
}

// An absolute path to a directory the daemon can enter.
std::optional<std::string> Validator::read_directory(const toml::node& node,
                                                     std::string_view label) {
  auto path = read_string(node, label);
  if (!path) return std::nullopt;
  if (path->front() != '/') {
    error(node, cat(label, ": must be an absolute path, got ", quoted(*path)));
    return std::nullopt;
  }
  struct stat st {};
  if (::stat(path->c_str(), &st) != 0) {
    error(node, cat(label, ": cannot use ", quoted(*path), ": ", base::errno_text(errno)));
    return std::nullopt;
  }
  if (!S_ISDIR(st.st_mode)) {
    error(node, cat(label, ": ", quoted(*path), " is not a directory"));
    return std::nullopt;
  }
  return path;
}

// A non-empty array of numeric user or group ids.
std::optional<std::vector<std::uint32_t>> Validator::read_ids(const toml::node& node,
                                                              std::string_view label) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    wrong_type(node, label, "an array of numeric ids, e.g. [0, 1000]");
    return std::nullopt;
  }
  if (array->empty()) {
    error(node, cat(label, ": must not be empty (remove the key to allow every peer)"));
    return std::nullopt;
  }
  const std::size_t errors_before = errors_.size();
  std::vector<std::uint32_t> ids;
  for (std::size_t i = 0; i < array->size(); ++i) {
    if (auto v = read_integer(*array->get(i), cat(label, "[", std::to_string(i), "]"), 0, kMaxId)) {
      ids.push_back(static_cast<std::uint32_t>(*v));
    }
  }
  if (errors_.size() != errors_before) return std::nullopt;
  return ids;
}

// listener.allow_commands: names of [commands.NAME] tables, checked to
// exist once every command is known.
std::optional<std::vector<std::string>> Validator::read_allow_commands(const toml::node& node) {
  constexpr std::string_view kLabel = "listener.allow_commands";
  const auto* array = node.as_array();
  if (array == nullptr) {
    wrong_type(node, kLabel, "an array of command names, e.g. [\"uptime\"]");
    return std::nullopt;
  }
  std::vector<std::string> names;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& item = *array->get(i);
    auto name = read_string(item, cat(kLabel, "[", std::to_string(i), "]"));
    if (!name) continue;
    allowed_command_refs_.emplace_back(&item, *name);
    names.push_back(std::move(*name));
  }
  return names;  // an empty array is meaningful: no exec on this listener
}

void Validator::check_allowed_commands_exist(const toml::table* commands) {
  for (const auto& [node, name] : allowed_command_refs_) {
    if (commands != nullptr && commands->contains(name)) continue;
    error(*node, cat("listener.allow_commands: no [commands.", name, "] is configured"));
  }
}

// argv[0] is run with execv (no PATH search, no shell), so it must be an
// absolute path to an executable regular file; --check-config reports it.
bool Validator::check_executable(const toml::node& node, const std::string& path,
                                 std::string_view label) {
  if (path.front() != '/') {
    error(node, cat(label, ": must be an absolute path (no PATH search), got ", quoted(path)));
    return false;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error(node, cat(label, ": cannot use ", quoted(path), ": ", base::errno_text(errno)));
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    error(node, cat(label, ": ", quoted(path), " is not a regular file"));
    return false;
  }
  if (::access(path.c_str(), X_OK) != 0) {
    error(node, cat(label, ": ", quoted(path), " is not executable: ", base::errno_text(errno)));
    return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------

std::string_view to_string(ListenerKind kind) noexcept { return name_of(kKinds, kind); }
std::string_view to_string(LogLevel level) noexcept { return name_of(kLogLevels, level); }

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line != 0) {
    if (!out.empty()) out += ':';
    out += std::to_string(line);
    out += ':';
    out += std::to_string(column);
  }
  if (!out.empty()) out += ": ";
  out += message;
  return out;
}

LoadResult parse_config(std::string_view toml_text, const std::string& source) {
  LoadResult result;
  try {
    toml::table root;
    try {
      root = toml::parse(toml_text, std::string_view(source));
    } catch (const toml::parse_error& e) {
      const auto& where = e.source().begin;
      result.errors.push_back(
          ConfigError{source, where.line, where.column, std::string(e.description())});
      return result;
    }
    Validator validator(source);
    Config config = validator.build(root);
    result.errors = validator.take_errors();
    if (result.errors.empty()) {
      config.source = source;
      result.config = std::move(config);
    }
  } catch (const std::exception& e) {
    // Allocation failure, mostly: still a value, never an exception.
    result.config.reset();
    result.errors.push_back(ConfigError{source, 0, 0, cat("internal error: ", e.what())});
  }
  return result;
}

LoadResult load_config(const std::string& path) {
  const auto fail = [&](std::string_view what, int err) {
    LoadResult result;
    result.errors.push_back(ConfigError{path, 0, 0, cat(what, ": ", base::errno_text(err))});
    return result;
  };
  try {
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return fail("cannot open", errno);
    std::string text;
    std::array<char, 16384> chunk{};
    for (;;) {
      const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail("cannot read", errno);
      }
      if (n == 0) break;
      text.append(chunk.data(), static_cast<std::size_t>(n));
      if (text.size() > kMaxConfigFileBytes) return fail("cannot read", EFBIG);
    }
    return parse_config(text, path);
  } catch (const std::exception& e) {
    LoadResult result;
    result.errors.push_back(ConfigError{path, 0, 0, cat("internal error: ", e.what())});
    return result;
  }
}

Config default_config() {
  Config config;
  Listener tcp;
  tcp.kind = ListenerKind::tcp;
  tcp.address = "127.0.0.1:9000";
  tcp.framing = Framing::json;
  tcp.name = "tcp:127.0.0.1:9000";
  tcp.limits = config.limits;

  Listener udp;
  udp.kind = ListenerKind::udp;
  udp.address = "127.0.0.1:9000";
  udp.framing = Framing::datagram;
  udp.payload = Payload::text;
  udp.name = "udp:127.0.0.1:9000";
  udp.limits = config.limits;

  config.listeners.push_back(std::move(tcp));
  config.listeners.push_back(std::move(udp));
  return config;
}

}  // namespace framed::config
