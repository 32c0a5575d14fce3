#include "config/config.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <exception>
#include <functional>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <utility>

#include "base/errno_text.hpp"
#include "base/unique_fd.hpp"
#include "config/address.hpp"
#include "config/schema.hpp"
#include "config/units.hpp"

namespace framed::config {
namespace {

// ---------------------------------------------------------------------------
// Enum names. The wire vocabulary's tables (framing, payload, byte order)
// are codec/framing.hpp's; these are the config's own.

using codec::Named;
using codec::name_of;

constexpr std::array<Named<ListenerKind>, 5> kKinds{{
    {"tcp", ListenerKind::tcp},
    {"udp", ListenerKind::udp},
    {"unix", ListenerKind::unix_stream},
    {"unix_dgram", ListenerKind::unix_dgram},
    {"http", ListenerKind::http},
}};

// The keys an http listener takes: it speaks HTTP, so none of the framing
// keys mean anything there, and it runs no commands.
constexpr std::array<std::string_view, 8> kHttpListenerKeys{
    "kind", "name", "address", "backlog", "max_header", "idle_timeout", "header_timeout", "max_connections_per_ip",
};
constexpr std::array<Named<LogLevel>, 5> kLogLevels{{
    {"trace", LogLevel::trace},
    {"debug", LogLevel::debug},
    {"info", LogLevel::info},
    {"warn", LogLevel::warn},
    {"error", LogLevel::error},
}};
constexpr std::array<Named<ExecContainment>, 4> kContainments{{
    {"auto", ExecContainment::automatic},
    {"cgroup", ExecContainment::cgroup},
    {"subreaper", ExecContainment::subreaper},
    {"process_group", ExecContainment::process_group},
}};
constexpr std::array<Named<ListenerAuth>, 3> kAuths{{
    {"none", ListenerAuth::none},
    {"token", ListenerAuth::token},
    {"certificate", ListenerAuth::certificate},
}};
constexpr std::array<Named<FileAccess>, 3> kFileAccess{{
    {"none", FileAccess::none},
    {"read", FileAccess::read},
    {"write", FileAccess::write},
}};
constexpr std::array<Named<reactor::BackendChoice>, 3> kBackends{{
    {"auto", reactor::BackendChoice::automatic},
    {"io_uring", reactor::BackendChoice::io_uring},
    {"epoll", reactor::BackendChoice::epoll},
}};

// `"a", "b" or "c"`
template <typename E, std::size_t N>
std::string one_of(const std::array<Named<E>, N>& names) {
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

// Each kept partial upload holds one open descriptor and a hash state: a
// table this large is a descriptor leak, not a resume feature.
constexpr std::int64_t kMaxPartials = 4096;

// Below this an address-space limit stops the dynamic loader itself, and
// every run would fail with a confusing error.
constexpr std::uint64_t kMinAddressSpace = 16U << 20;

// uid_t and gid_t are 32-bit; (uid_t)-1 means "no change" to the kernel and
// is nobody's id.
constexpr std::int64_t kMaxId = std::numeric_limits<std::uint32_t>::max() - 1;

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
  return kind == ListenerKind::tcp || kind == ListenerKind::unix_stream || kind == ListenerKind::http;
}
bool is_inet(ListenerKind kind) {
  return kind == ListenerKind::tcp || kind == ListenerKind::udp || kind == ListenerKind::http;
}

struct UserIds {
  std::uint32_t uid;
  std::uint32_t gid;  // the primary group
};

// Runs a getpwnam_r-style lookup, `lookup(buffer, size)` returning its
// error number, with a buffer that grows while the entry does not fit.
template <typename Lookup>
void with_entry_buffer(Lookup lookup) {
  std::vector<char> buffer(1024);
  while (lookup(buffer.data(), buffer.size()) == ERANGE && buffer.size() < (1U << 20)) buffer.resize(buffer.size() * 2);
}

// The uid's primary group from the passwd database; a uid it does not list
// gets the group of the same number.
std::uint32_t primary_group(std::uint32_t uid) {
  std::uint32_t gid = uid;
  with_entry_buffer([&](char* buffer, std::size_t size) {
    passwd entry{};
    passwd* found = nullptr;
    const int error = ::getpwuid_r(uid, &entry, buffer, size, &found);
    if (found != nullptr) gid = found->pw_gid;
    return error;
  });
  return gid;
}

// A user or group name, or (as chown(1) takes it) a number that names none.
std::optional<std::uint32_t> numeric_id(const std::string& name) {
  if (name.empty() || name.size() > 10 || name.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  const std::uint64_t id = std::stoull(name);
  if (id > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  return static_cast<std::uint32_t>(id);
}

std::optional<UserIds> lookup_user(const std::string& name) {
  std::optional<UserIds> ids;
  with_entry_buffer([&](char* buffer, std::size_t size) {
    passwd entry{};
    passwd* found = nullptr;
    const int error = ::getpwnam_r(name.c_str(), &entry, buffer, size, &found);
    if (found != nullptr) ids = UserIds{found->pw_uid, found->pw_gid};
    return error;
  });
  if (ids) return ids;
  if (const auto uid = numeric_id(name)) return UserIds{*uid, primary_group(*uid)};
  return std::nullopt;
}

std::optional<std::uint32_t> lookup_group(const std::string& name) {
  std::optional<std::uint32_t> gid;
  with_entry_buffer([&](char* buffer, std::size_t size) {
    group entry{};
    group* found = nullptr;
    const int error = ::getgrnam_r(name.c_str(), &entry, buffer, size, &found);
    if (found != nullptr) gid = found->gr_gid;
    return error;
  });
  return gid ? gid : numeric_id(name);
}

// ---------------------------------------------------------------------------
// Rows: one per key of a table.

class Validator;

enum class Reload { on_sighup, at_restart };

template <typename Target>
struct Row {
  std::string_view key;
  ValueType type;
  std::uint64_t min = 0;  // integer and size rows only
  std::uint64_t max = 0;
  Reload reload = Reload::on_sighup;
  // Reads the value at `node` into `target`, or reports why not and returns
  // false. `label` is the dotted key as messages name it ("commands.a.timeout").
  std::function<bool(Validator&, const toml::node& node, const std::string& label, Target& target)>
      read;
  // Non-empty: the key is required, and this says what it is for.
  std::string required = {};
};

// What a table's walk found: the keys it took a value from, for the
// cross-key rules, and how many keys it did not know.
class Taken {
 public:
  void add(std::string_view key) { keys_.push_back(key); }
  void add_unknown() { ++unknown_keys_; }
  [[nodiscard]] bool contains(std::string_view key) const {
    return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
  }
  [[nodiscard]] std::size_t unknown_keys() const { return unknown_keys_; }

 private:
  std::vector<std::string_view> keys_;
  std::size_t unknown_keys_ = 0;
};

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

  // The one generic walker: unknown keys (with a "did you mean"), each known
  // key's value through its row, then the required keys that are missing.
  template <typename Target>
  Taken walk(const toml::table& table, std::span<const Row<Target>> rows, std::string_view prefix,
             std::string_view header, Target& target);

  // Value readers, one per kind of value; each reports its own errors.
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
  std::optional<E> read_choice(const toml::node& node, std::string_view label,
                               const std::array<Named<E>, N>& names);
  std::optional<reactor::BackendChoice> read_backend(const toml::node& node,
                                                     std::string_view label);
  std::optional<std::string> read_address(const toml::node& node, std::string_view label);
  std::optional<RedisEndpoint> read_redis_url(const toml::node& node, std::string_view label);
  std::optional<std::uint32_t> read_mode(const toml::node& node, std::string_view label);
  std::optional<std::string> read_unix_path(const toml::node& node, std::string_view label);
  std::optional<std::string> read_command_word(const toml::node& node, std::string_view label);
  std::optional<std::vector<std::string>> read_allow_commands(const toml::node& node,
                                                              std::string_view label);
  std::optional<std::vector<std::string>> read_argv(const toml::node& node,
                                                    std::string_view label);
  std::optional<std::map<std::string, std::string>> read_env(const toml::node& node,
                                                             std::string_view label);
  std::optional<std::string> read_directory(const toml::node& node, std::string_view label);
  std::optional<std::string> read_tls_file(const toml::node& node, std::string_view label);
  std::optional<std::uint64_t> read_cpu_seconds(const toml::node& node, std::string_view label);
  std::optional<std::vector<std::uint32_t>> read_ids(const toml::node& node,
                                                     std::string_view label);
  std::optional<ListenerAuth> read_auth(const toml::node& node, std::string_view label);
  std::optional<std::uint32_t> read_user(const toml::node& node, std::string_view label);
  std::optional<std::uint32_t> read_group(const toml::node& node, std::string_view label);
  std::optional<std::string> read_token_hash(const toml::node& node, std::string_view label);
  std::optional<std::vector<std::string>> read_channel_globs(const toml::node& node, std::string_view label);

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

  void unknown_key(const toml::key& key, std::span<const std::string_view> known,
                   std::string_view where);
  const toml::table* as_table(const Entry& entry, std::string_view label, std::string_view header);
  bool check_executable(const toml::node& node, const std::string& path, std::string_view label);

  // The sections, each a walk plus the rules that span keys.
  void read_listeners(const toml::array& array, const Limits& base,
                      std::vector<Listener>& listeners);
  std::optional<Listener> read_listener(const toml::table& table, const Limits& base);
  bool check_listener_rules(const toml::table& table, const Taken& taken, Listener& listener);
  void check_listener_tls(const toml::table& table, Listener& listener);
  void check_listener_clashes(const std::vector<const toml::table*>& tables,
                              const std::vector<Listener>& listeners);
  void read_commands(const toml::table& table, std::map<std::string, Command>& commands);
  void check_allowed_commands_exist(const toml::table* commands);
  void read_principals(const toml::table& table, std::map<std::string, Principal>& principals);
  void check_principal_credentials(const toml::table& table, const std::map<std::string, Principal>& principals);
  void check_listener_auth(const std::map<std::string, Principal>& principals);

  std::string file_;
  std::vector<ConfigError> errors_;
  // Names in listeners' allow_commands, checked against [commands] once it
  // has been read (it may come later in the file).
  struct CommandRef {
    const toml::node* node;
    std::string name;
    std::string label;  // "listener.allow_commands", "principals.deploy.allow_commands"
  };
  std::vector<CommandRef> allowed_command_refs_;
  // Listeners with auth = "token" or "certificate" (the key's value), checked
  // against [principals] once it has been read: nobody could ever pass them.
  std::vector<std::pair<const toml::node*, ListenerAuth>> auth_refs_;
};

// ---------------------------------------------------------------------------
// Row makers: a key, its type and bounds, and the member it lands in.

// `field = value` for plain and optional members alike.
template <typename T>
struct Unwrapped {
  using type = T;
};
template <typename T>
struct Unwrapped<std::optional<T>> {
  using type = T;
};
template <typename Field, typename Value>
void assign(Field& field, Value value) {
  field = static_cast<typename Unwrapped<Field>::type>(value);
}

template <typename Target, typename Field>
Row<Target> integer_key(std::string_view key, std::int64_t min, std::int64_t max,
                        Field Target::*field) {
  return {key, ValueType::integer, static_cast<std::uint64_t>(min), static_cast<std::uint64_t>(max),
          Reload::on_sighup,
          [=](Validator& v, const toml::node& node, const std::string& label, Target& target) {
            const auto value = v.read_integer(node, label, min, max);
            if (value) assign(target.*field, *value);
            return value.has_value();
          }};
}

template <typename Target, typename Field>
Row<Target> size_key(std::string_view key, std::uint64_t min, std::uint64_t max,
                     std::string_view max_reason, Field Target::*field) {
  return {key, ValueType::size, min, max, Reload::on_sighup,
          [=](Validator& v, const toml::node& node, const std::string& label, Target& target) {
            const auto value = v.read_size(node, label, min, max, max_reason);
            if (value) assign(target.*field, *value);
            return value.has_value();
          }};
}

enum class Zero { allowed, refused };

template <typename Target>
Row<Target> duration_key(std::string_view key, Zero zero,
                         std::chrono::nanoseconds Target::*field) {
  return {key, ValueType::duration, 0, 0, Reload::on_sighup,
          [=](Validator& v, const toml::node& node, const std::string& label, Target& target) {
            const auto value = v.read_duration(node, label, zero == Zero::allowed);
            if (value) target.*field = *value;
            return value.has_value();
          }};
}

template <typename Target, typename E, std::size_t N>
Row<Target> choice_key(std::string_view key, const std::array<Named<E>, N>& names,
                       E Target::*field) {
  return {key, ValueType::choice, 0, 0, Reload::on_sighup,
          [=, &names](Validator& v, const toml::node& node, const std::string& label,
                      Target& target) {
            const auto value = v.read_choice(node, label, names);
            if (value) target.*field = *value;
            return value.has_value();
          }};
}

template <typename Target>
Row<Target> bool_key(std::string_view key, bool Target::*field) {
  return {key, ValueType::boolean, 0, 0, Reload::on_sighup,
          [=](Validator& v, const toml::node& node, const std::string& label, Target& target) {
            const auto value = v.read_bool(node, label);
            if (value) target.*field = *value;
            return value.has_value();
          }};
}

// Any other value: `reader` is a Validator member that checks it whole.
template <typename Target, typename Field, typename Value>
Row<Target> custom_key(std::string_view key, ValueType type,
                       std::optional<Value> (Validator::*reader)(const toml::node&,
                                                                 std::string_view),
                       Field Target::*field) {
  return {key, type, 0, 0, Reload::on_sighup,
          [=](Validator& v, const toml::node& node, const std::string& label, Target& target) {
            auto value = (v.*reader)(node, label);
            if (value) target.*field = std::move(*value);
            return value.has_value();
          }};
}

template <typename Target>
Row<Target> string_key(std::string_view key, std::string Target::*field) {
  return custom_key(key, ValueType::string, &Validator::read_string, field);
}

template <typename Target>
Row<Target> required(Row<Target> row, std::string why) {
  row.required = std::move(why);
  return row;
}

template <typename Target>
Row<Target> restart_only(Row<Target> row) {
  row.reload = Reload::at_restart;
  return row;
}

// The rows of a part of `Outer` (a listener's limits), as rows of `Outer`.
template <typename Outer, typename Inner>
std::vector<Row<Outer>> nested(std::span<const Row<Inner>> rows, Inner Outer::*part) {
  std::vector<Row<Outer>> out;
  for (const auto& row : rows) {
    out.push_back({row.key, row.type, row.min, row.max, row.reload,
                   [read = row.read, part](Validator& v, const toml::node& node,
                                           const std::string& label, Outer& outer) {
                     return read(v, node, label, outer.*part);
                   },
                   row.required});
  }
  return out;
}

// ---------------------------------------------------------------------------
// The tables. A key that no feature reads must not have a row: an accepted
// key that does nothing is what unknown-key errors exist to prevent.

constexpr std::int64_t kMaxU32 = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();
// Requests per second a principal may make: past a million the bucket's
// arithmetic still holds, but the figure is a typo.
constexpr std::int64_t kMaxRate = 1'000'000;
// Reactor threads: more than the largest machines have cores is a typo.
constexpr std::int64_t kMaxReactors = 1024;

const std::vector<Row<Daemon>>& daemon_rows() {
  static const std::vector<Row<Daemon>> rows{
      integer_key("workers", 0, kMaxWorkers, &Daemon::workers),
      // The reactor is chosen once, at start: a reload cannot swap it.
      restart_only(custom_key("backend", ValueType::choice, &Validator::read_backend,
                              &Daemon::backend)),
      choice_key("log_level", kLogLevels, &Daemon::log_level),
      integer_key("max_connections", 1, kMaxU32, &Daemon::max_connections),
      // Zero is meaningful: do not wait for requests in flight.
      duration_key("shutdown_timeout", Zero::allowed, &Daemon::shutdown_timeout),
      // Zero is meaningful: only what an idle worker takes at once.
      integer_key("max_queued_jobs", 0, kMaxQueuedJobs, &Daemon::max_queued_jobs),
      // Set up once, at start, for the whole process (a subreaper cannot
      // hand its adopted orphans back).
      restart_only(choice_key("exec_containment", kContainments, &Daemon::exec_containment)),
      // Each reactor thread is made at start with its own sockets: a
      // reload cannot add or remove one.
      restart_only(integer_key("reactors", 0, kMaxReactors, &Daemon::reactors)),
      restart_only(bool_key("pin_reactors", &Daemon::pin_reactors)),
  };
  return rows;
}

const std::vector<Row<Limits>>& limit_rows() {
  static const std::vector<Row<Limits>> rows{
      size_key("max_header", 1, kMaxHeader, "a json header length is a u32", &Limits::max_header),
      size_key("max_body", 0, kMaxU64, "", &Limits::max_body),
      duration_key("idle_timeout", Zero::refused, &Limits::idle_timeout),
      duration_key("header_timeout", Zero::refused, &Limits::header_timeout),
      duration_key("body_timeout", Zero::refused, &Limits::body_timeout),
      // Zero is meaningful: the deadline never moves, every body has
      // body_timeout whatever its size.
      size_key("min_body_rate", 0, kMaxU64, "", &Limits::min_body_rate),
      integer_key("max_pending_replies", 1, kMaxU32, &Limits::max_pending_replies),
      // At least one event of a typical size: below it every subscriber of
      // a busy channel would be dropped at once.
      size_key("max_event_backlog", 4096, kMaxU64, "", &Limits::max_event_backlog),
      // Daemon-wide: a listener may not set it (listener_rows).
      // At least what one connection's buffers take at once.
      size_key("max_buffered_total", 1ULL << 20, kMaxU64, "", &Limits::max_buffered_total),
  };
  return rows;
}

const std::vector<Row<Listener>>& listener_rows() {
  static const std::vector<Row<Listener>> rows = [] {
    std::vector<Row<Listener>> out{
        required(choice_key("kind", kKinds, &Listener::kind), one_of(kKinds)),
        string_key("name", &Listener::name),
        custom_key("auth", ValueType::choice, &Validator::read_auth, &Listener::auth),
        integer_key("max_connections_per_ip", 1, kMaxU32, &Listener::max_connections_per_ip),
        custom_key("address", ValueType::address, &Validator::read_address, &Listener::address),
        custom_key("path", ValueType::path, &Validator::read_unix_path, &Listener::path),
        custom_key("mode", ValueType::octal_mode, &Validator::read_mode, &Listener::mode),
        choice_key("framing", codec::kFramingNames, &Listener::framing),
        choice_key("payload", codec::kPayloadNames, &Listener::payload),
        choice_key("byte_order", codec::kByteOrderNames, &Listener::byte_order),
        choice_key("reply_framing", codec::kReplyFramingNames, &Listener::reply_framing),
        custom_key("command", ValueType::string, &Validator::read_command_word,
                   &Listener::command),
        integer_key("backlog", 1, kMaxBacklog, &Listener::backlog),
        custom_key("allow_commands", ValueType::string_list, &Validator::read_allow_commands,
                   &Listener::allow_commands),
        custom_key("tls_cert", ValueType::path, &Validator::read_tls_file, &Listener::tls_cert),
        custom_key("tls_key", ValueType::path, &Validator::read_tls_file, &Listener::tls_key),
        custom_key("tls_client_ca", ValueType::path, &Validator::read_tls_file, &Listener::tls_client_ca),
    };
    // Each listener may override any key of [limits] but the daemon-wide
    // budget, which every listener shares.
    for (auto& row : nested<Listener, Limits>(limit_rows(), &Listener::limits)) {
      if (row.key != "max_buffered_total") out.push_back(std::move(row));
    }
    return out;
  }();
  return rows;
}

const std::vector<Row<Files>>& files_rows() {
  static const std::vector<Row<Files>> rows{
      required(custom_key("root", ValueType::path, &Validator::read_directory, &Files::root),
               "the directory that put, get and list work in; remove [files] to disable them"),
      size_key("max_file_size", 1, kMaxU64, "", &Files::max_file_size),
      bool_key("fsync", &Files::fsync),
      bool_key("allow_subdirs", &Files::allow_subdirs),
      // Zero is meaningful: no failed upload is kept.
      duration_key("resume_window", Zero::allowed, &Files::resume_window),
      integer_key("max_partials", 0, kMaxPartials, &Files::max_partials),
  };
  return rows;
}

const std::vector<Row<Command>>& command_rows() {
  static const std::vector<Row<Command>> rows{
      required(custom_key("argv", ValueType::string_list, &Validator::read_argv, &Command::argv),
               "the program and its fixed arguments, e.g. argv = [\"/bin/date\"]"),
      duration_key("timeout", Zero::refused, &Command::timeout),
      size_key("max_output", 0, kMaxU64, "", &Command::max_output),
      bool_key("allow_args", &Command::allow_args),
      custom_key("env", ValueType::string_table, &Validator::read_env, &Command::env),
      custom_key("cwd", ValueType::path, &Validator::read_directory, &Command::cwd),
      custom_key("rlimit_cpu", ValueType::duration, &Validator::read_cpu_seconds,
                 &Command::rlimit_cpu),
      size_key("rlimit_as", kMinAddressSpace, kMaxU64, "", &Command::rlimit_as),
      integer_key("rlimit_nofile", 3, kMaxOpenFiles, &Command::rlimit_nofile),
      integer_key("max_concurrent", 1, kMaxU32, &Command::max_concurrent),
      integer_key("rlimit_nproc", 1, kMaxU32, &Command::rlimit_nproc),
      custom_key("user", ValueType::string, &Validator::read_user, &Command::run_uid),
      custom_key("group", ValueType::string, &Validator::read_group, &Command::run_gid),
      custom_key("allow_uids", ValueType::id_list, &Validator::read_ids, &Command::allow_uids),
      custom_key("allow_gids", ValueType::id_list, &Validator::read_ids, &Command::allow_gids),
  };
  return rows;
}

const std::vector<Row<Principal>>& principal_rows() {
  static const std::vector<Row<Principal>> rows{
      custom_key("token_sha256", ValueType::string, &Validator::read_token_hash, &Principal::token_sha256),
      custom_key("certificate_subject", ValueType::string, &Validator::read_string, &Principal::certificate_subject),
      custom_key("unix_uids", ValueType::id_list, &Validator::read_ids, &Principal::unix_uids),
      custom_key("allow_commands", ValueType::string_list, &Validator::read_allow_commands,
                 &Principal::allow_commands),
      choice_key("files", kFileAccess, &Principal::files),
      custom_key("channels", ValueType::string_list, &Validator::read_channel_globs, &Principal::channels),
      integer_key("rate", 1, kMaxRate, &Principal::rate),
  };
  return rows;
}

// Both keys are read once, at start: the bridge's connections and its
// subscription are made then (a reload that changes them warns).
const std::vector<Row<Pubsub>>& pubsub_rows() {
  static const std::vector<Row<Pubsub>> rows{
      restart_only(custom_key("bridge", ValueType::string, &Validator::read_redis_url, &Pubsub::bridge)),
      restart_only(string_key("bridge_prefix", &Pubsub::bridge_prefix)),
  };
  return rows;
}

// The top level holds tables only; each is read by hand in build(), since
// their shapes differ ([daemon], [[listener]], [commands.NAME]).
constexpr std::array<std::string_view, 7> kTopKeys{"daemon", "limits", "listener", "files",
                                                   "commands", "principals", "pubsub"};

// ---------------------------------------------------------------------------
// The walker.

template <typename Target>
Taken Validator::walk(const toml::table& table, std::span<const Row<Target>> rows,
                      std::string_view prefix, std::string_view header, Target& target) {
  std::vector<std::string_view> known;
  known.reserve(rows.size());
  for (const auto& row : rows) known.push_back(row.key);

  Taken taken;
  for (const auto& [key, node] : table) {
    const std::string_view name = key.str();  // (a structured binding cannot be captured before clang 16)
    const auto row = std::find_if(rows.begin(), rows.end(), [name](const auto& candidate) {
      return candidate.key == name;
    });
    if (row == rows.end()) {
      unknown_key(key, known, header);
      taken.add_unknown();
      continue;
    }
    if (row->read(*this, node, cat(prefix, ".", key.str()), target)) taken.add(row->key);
  }
  for (const auto& row : rows) {
    if (!row.required.empty() && !table.contains(row.key)) {
      error(table, cat(header, ": missing required key '", row.key, "' (", row.required, ")"));
    }
  }
  return taken;
}

void Validator::unknown_key(const toml::key& key, std::span<const std::string_view> known,
                            std::string_view where) {
  const std::string_view name = key.str();
  std::string message = cat("unknown key '", name, "' in ", where);
  const std::string_view hint = closest(name, known);
  if (!hint.empty()) message += cat("; did you mean '", hint, "'?");
  error(key, std::move(message));
}

const toml::table* Validator::as_table(const Entry& entry, std::string_view label,
                                       std::string_view header) {
  if (!entry) return nullptr;
  if (const auto* table = entry.node->as_table()) return table;
  error(*entry.node,
        cat(label, ": expected a table (", header, "), got ", type_phrase(*entry.node)));
  return nullptr;
}

// ---------------------------------------------------------------------------
// Value readers.

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
    error(node, cat(label, ": must be from ", std::to_string(min), " to ", std::to_string(max),
                    ", got ", std::to_string(number)));
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
std::optional<E> Validator::read_choice(const toml::node& node, std::string_view label,
                                        const std::array<Named<E>, N>& names) {
  const auto* string = node.as_string();
  if (string == nullptr) {
    wrong_type(node, label, cat("one of ", one_of(names)));
    return std::nullopt;
  }
  if (auto value = codec::value_of(names, string->get())) return value;
  error(node, cat(label, ": unknown value ", quoted(string->get()), "; expected ", one_of(names)));
  return std::nullopt;
}

std::optional<reactor::BackendChoice> Validator::read_backend(const toml::node& node,
                                                              std::string_view label) {
  // The reactor owns the spelling; kBackends only words the message.
  const auto* string = node.as_string();
  if (string == nullptr) {
    wrong_type(node, label, cat("one of ", one_of(kBackends)));
    return std::nullopt;
  }
  if (auto choice = reactor::parse_backend_choice(string->get())) return choice;
  error(node, cat(label, ": unknown value ", quoted(string->get()), "; expected ",
                  one_of(kBackends)));
  return std::nullopt;
}

std::optional<std::string> Validator::read_address(const toml::node& node,
                                                   std::string_view label) {
  auto text = read_string(node, label);
  if (!text) return std::nullopt;
  const auto parsed = parse_address(*text);
  if (!parsed.value) {
    error(node, cat(label, ": ", parsed.error));
    return std::nullopt;
  }
  return text;  // as written: logs and default names show what the operator wrote
}

std::optional<RedisEndpoint> Validator::read_redis_url(const toml::node& node, std::string_view label) {
  auto text = read_string(node, label);
  if (!text) return std::nullopt;
  auto parsed = parse_redis_url(*text);
  if (!parsed.value) {
    error(node, cat(label, ": ", parsed.error));
    return std::nullopt;
  }
  return std::move(parsed.value);
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

// listener.command: the simple framings split a message on spaces only when
// there is no fixed command, so the fixed one is a single word.
std::optional<std::string> Validator::read_command_word(const toml::node& node,
                                                        std::string_view label) {
  auto word = read_string(node, label);
  if (!word) return std::nullopt;
  if (word->find_first_of(" \t\r\n") != std::string::npos) {
    error(node, cat(label, ": a command name has no spaces, got ", quoted(*word)));
    return std::nullopt;
  }
  return word;
}

// listener.allow_commands: names of [commands.NAME] tables, checked to
// exist once every command is known.
std::optional<std::vector<std::string>> Validator::read_allow_commands(const toml::node& node,
                                                                       std::string_view label) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    wrong_type(node, label, "an array of command names, e.g. [\"uptime\"]");
    return std::nullopt;
  }
  std::vector<std::string> names;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& item = *array->get(i);
    auto name = read_string(item, cat(label, "[", std::to_string(i), "]"));
    if (!name) continue;
    allowed_command_refs_.push_back(CommandRef{&item, *name, std::string(label)});
    names.push_back(std::move(*name));
  }
  return names;  // an empty array is meaningful: no exec on this listener
}

std::optional<std::vector<std::string>> Validator::read_argv(const toml::node& node,
                                                             std::string_view label) {
  const auto* argv = node.as_array();
  if (argv == nullptr) {
    wrong_type(node, label, "an array of strings");
    return std::nullopt;
  }
  if (argv->empty()) {
    error(node, cat(label, ": must not be empty; argv[0] is the program to run"));
    return std::nullopt;
  }
  const std::size_t errors_before = errors_.size();
  std::vector<std::string> items;
  for (std::size_t i = 0; i < argv->size(); ++i) {
    const toml::node& item = *argv->get(i);
    const std::string item_label = cat(label, "[", std::to_string(i), "]");
    std::optional<std::string> text;
    if (i > 0 && item.is_string() && item.as_string()->get().empty()) {
      text = std::string();  // an empty argument is a legitimate argument
    } else {
      text = read_string(item, item_label);
    }
    if (!text) continue;
    if (i == 0 && !check_executable(item, *text, item_label)) continue;
    items.push_back(std::move(*text));
  }
  if (errors_.size() != errors_before) return std::nullopt;
  return items;
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

// A certificate, key or CA file: an absolute path (the daemon's working
// directory is no place to look). Whether it reads as PEM is checked when
// the listener's TLS context is loaded.
std::optional<std::string> Validator::read_tls_file(const toml::node& node, std::string_view label) {
  auto path = read_string(node, label);
  if (!path) return std::nullopt;
  if (path->front() != '/') {
    error(node, cat(label, ": must be an absolute path, got ", quoted(*path)));
    return std::nullopt;
  }
  return path;
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

// RLIMIT_CPU counts whole seconds: a duration rounded up, never to zero.
std::optional<std::uint64_t> Validator::read_cpu_seconds(const toml::node& node,
                                                         std::string_view label) {
  const auto duration = read_duration(node, label, false);
  if (!duration) return std::nullopt;
  if (*duration < std::chrono::seconds(1)) {
    error(node, cat(label, ": must be at least 1s (the limit counts whole seconds)"));
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(std::chrono::ceil<std::chrono::seconds>(*duration).count());
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

// A user name from the passwd database (or a numeric uid), resolved now:
// the child cannot look anything up between clone and execve.
std::optional<std::uint32_t> Validator::read_user(const toml::node& node, std::string_view label) {
  auto name = read_string(node, label);
  if (!name) return std::nullopt;
  if (const auto user = lookup_user(*name)) return user->uid;
  error(node, cat(label, ": no user ", quoted(*name), " on this system"));
  return std::nullopt;
}

std::optional<std::uint32_t> Validator::read_group(const toml::node& node, std::string_view label) {
  auto name = read_string(node, label);
  if (!name) return std::nullopt;
  if (const auto gid = lookup_group(*name)) return gid;
  error(node, cat(label, ": no group ", quoted(*name), " on this system"));
  return std::nullopt;
}

std::optional<ListenerAuth> Validator::read_auth(const toml::node& node, std::string_view label) {
  auto auth = read_choice(node, label, kAuths);
  if (auth && *auth != ListenerAuth::none) auth_refs_.emplace_back(&node, *auth);
  return auth;
}

// The SHA-256 of a token, as `sha256sum` prints it: the file never holds the
// token itself, so a leaked config leaks no credential.
std::optional<std::string> Validator::read_token_hash(const toml::node& node, std::string_view label) {
  auto hash = read_string(node, label);
  if (!hash) return std::nullopt;
  const bool hex = hash->size() == 64 && hash->find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
  if (!hex) {
    error(node, cat(label, ": expected the token's SHA-256 as 64 hex digits (printf %s TOKEN | sha256sum), got ",
                    std::to_string(hash->size()), " characters"));
    return std::nullopt;
  }
  std::transform(hash->begin(), hash->end(), hash->begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return hash;
}

// Channel globs as fnmatch(3) reads them ("builds.*", "deploy-?", "[ab]*").
std::optional<std::vector<std::string>> Validator::read_channel_globs(const toml::node& node,
                                                                      std::string_view label) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    wrong_type(node, label, "an array of channel patterns, e.g. [\"builds.*\"]");
    return std::nullopt;
  }
  const std::size_t errors_before = errors_.size();
  std::vector<std::string> globs;
  for (std::size_t i = 0; i < array->size(); ++i) {
    if (auto glob = read_string(*array->get(i), cat(label, "[", std::to_string(i), "]"))) {
      globs.push_back(std::move(*glob));
    }
  }
  if (errors_.size() != errors_before) return std::nullopt;
  return globs;  // empty is meaningful: no channel
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

// ---------------------------------------------------------------------------
// The sections.

Config Validator::build(const toml::table& root) {
  Config config;
  for (const auto& [key, value] : root) {
    if (std::find(kTopKeys.begin(), kTopKeys.end(), key.str()) == kTopKeys.end()) {
      unknown_key(key, kTopKeys, "the top level");
    }
  }

  if (const auto* daemon = as_table(lookup(root, "daemon"), "daemon", "[daemon]")) {
    walk<Daemon>(*daemon, daemon_rows(), "daemon", "[daemon]", config.daemon);
  }
  // [limits] before the listeners: each listener starts from it.
  if (const auto* limits = as_table(lookup(root, "limits"), "limits", "[limits]")) {
    walk<Limits>(*limits, limit_rows(), "limits", "[limits]", config.limits);
  }
  if (const Entry listeners = lookup(root, "listener")) {
    if (const auto* array = listeners.node->as_array()) {
      read_listeners(*array, config.limits, config.listeners);
    } else {
      error(*listeners.node, cat("listener: expected an array of tables ([[listener]]), got ",
                                 type_phrase(*listeners.node)));
    }
  }
  if (const auto* files = as_table(lookup(root, "files"), "files", "[files]")) {
    Files value;
    walk<Files>(*files, files_rows(), "files", "[files]", value);
    config.files = std::move(value);
  }
  const auto* commands = as_table(lookup(root, "commands"), "commands", "[commands.NAME]");
  if (commands != nullptr) read_commands(*commands, config.commands);
  if (const auto* principals = as_table(lookup(root, "principals"), "principals", "[principals.NAME]")) {
    read_principals(*principals, config.principals);
    check_principal_credentials(*principals, config.principals);
  }
  if (const auto* pubsub = as_table(lookup(root, "pubsub"), "pubsub", "[pubsub]")) {
    walk<Pubsub>(*pubsub, pubsub_rows(), "pubsub", "[pubsub]", config.pubsub);
  }
  check_allowed_commands_exist(commands);
  check_listener_auth(config.principals);
  return config;
}

void Validator::read_listeners(const toml::array& array, const Limits& base,
                               std::vector<Listener>& listeners) {
  std::vector<const toml::table*> tables;
  for (const auto& element : array) {
    const auto* table = element.as_table();
    if (table == nullptr) {
      error(element, cat("listener: expected a table ([[listener]]), got ", type_phrase(element)));
      continue;
    }
    auto listener = read_listener(*table, base);
    if (!listener) continue;
    tables.push_back(table);
    listeners.push_back(std::move(*listener));
  }
  check_listener_clashes(tables, listeners);
}

std::optional<Listener> Validator::read_listener(const toml::table& table, const Limits& base) {
  const std::size_t errors_before = errors_.size();
  Listener listener;
  listener.limits = base;
  const Taken taken = walk<Listener>(table, listener_rows(), "listener", "[[listener]]", listener);
  if (!taken.contains("kind")) return std::nullopt;
  if (!check_listener_rules(table, taken, listener)) return std::nullopt;
  // An unknown key is reported but keeps the listener in the clash checks
  // below: its values are good, so their clashes are worth reporting too.
  if (errors_.size() - taken.unknown_keys() != errors_before) return std::nullopt;
  return listener;
}

// ---------------------------------------------------------------------------
// Rules that span keys. Each one exists because a key that means nothing in
// its context would be silently ignored, which unknown keys must never be.

// Which keys a listener's kind and framing take; fills the defaults that
// depend on them (framing, name). False when a rule failed.
bool Validator::check_listener_rules(const toml::table& table, const Taken& taken,
                                     Listener& listener) {
  const std::size_t errors_before = errors_.size();
  const ListenerKind kind = listener.kind;
  const std::string_view kind_name = to_string(kind);
  const Entry address = lookup(table, "address");
  const Entry path = lookup(table, "path");
  const Entry mode = lookup(table, "mode");
  const Entry framing = lookup(table, "framing");
  const Entry payload = lookup(table, "payload");
  const Entry byte_order = lookup(table, "byte_order");
  const Entry reply_framing = lookup(table, "reply_framing");
  const Entry command = lookup(table, "command");
  const Entry backlog = lookup(table, "backlog");

  if (kind == ListenerKind::http) {
    for (const auto& [key, value] : table) {
      const std::string_view name = key.str();
      if (std::find(kHttpListenerKeys.begin(), kHttpListenerKeys.end(), name) != kHttpListenerKeys.end()) continue;
      // Unknown keys are reported already; path and mode by the address rules
      // below, the tls keys by check_listener_tls.
      if (!taken.contains(name) || name == "path" || name == "mode" || name.starts_with("tls_")) continue;
      error(key, cat("listener.", name,
                     ": an http listener speaks HTTP, not a framing; it takes only address, name, "
                     "backlog, max_header, idle_timeout and header_timeout"));
    }
  }

  if (is_inet(kind)) {
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
  if (const Entry auth = lookup(table, "auth"); auth && taken.contains("auth")) {
    if (kind != ListenerKind::tcp && kind != ListenerKind::unix_stream) {
      error(*auth.key, cat("listener.auth: a ", kind_name,
                           " listener has no connection to authenticate; auth applies to tcp and unix"));
    } else if (listener.auth == ListenerAuth::certificate &&
               (kind != ListenerKind::tcp || !lookup(table, "tls_client_ca"))) {
      error(*auth.node, "listener.auth: \"certificate\" needs TLS with client certificates "
                        "(tls_cert, tls_key and tls_client_ca on a tcp listener)");
    }
  }
  if (const Entry per_ip = lookup(table, "max_connections_per_ip");
      per_ip && kind != ListenerKind::tcp && kind != ListenerKind::http) {
    error(*per_ip.key, cat("listener.max_connections_per_ip: a ", kind_name,
                           " listener has no source addresses to count; it applies to tcp and http"));
  }
  if (backlog && !is_stream(kind)) {
    error(*backlog.key, cat("listener.backlog: a ", kind_name,
                            " listener does not listen(); backlog applies to tcp and unix"));
  }

  // Framing: json for streams and datagram for datagram sockets by default;
  // a datagram socket has no byte stream to frame, and a stream no datagrams.
  // A framing that is wrong (or was not read) leaves the framing rules below
  // unchecked: they would only add noise to the error already reported.
  bool framing_known = true;
  if (kind == ListenerKind::http) {
    framing_known = false;  // it has no framing; its keys are checked above
  } else if (!framing) {
    listener.framing = is_stream(kind) ? Framing::json : Framing::datagram;
  } else if (!taken.contains("framing")) {
    framing_known = false;
  } else if (is_stream(kind) && listener.framing == Framing::datagram) {
    error(*framing.node, cat("listener.framing: \"datagram\" is for udp and unix_dgram "
                             "listeners; a ",
                             kind_name, " listener takes \"json\", \"length\", \"line\" or \"raw\""));
    framing_known = false;
  } else if (!is_stream(kind) && listener.framing != Framing::datagram) {
    error(*framing.node,
          cat("listener.framing: a ", kind_name, " listener's framing must be \"datagram\", got ",
              quoted(codec::to_string(listener.framing)),
              " (payload = \"json\" carries json frames)"));
    framing_known = false;
  }

  if (framing_known) {
    const codec::WireFormat wire = listener.wire_format();
    if (payload && wire.framing != Framing::datagram) {
      error(*payload.key,
            "listener.payload: applies only to datagram framing (udp and "
            "unix_dgram listeners)");
    }
    if (reply_framing && wire.framing != Framing::raw) {
      error(*reply_framing.key,
            "listener.reply_framing: applies only to \"raw\" framing (the other framings frame "
            "their replies as they frame requests)");
    }
    const bool text_datagram = wire.framing == Framing::datagram && wire.payload == Payload::text;
    const bool raw_unprefixed = wire.framing == Framing::raw && wire.reply_framing == ReplyFraming::raw;
    if (byte_order && (wire.framing == Framing::line || text_datagram || raw_unprefixed)) {
      error(*byte_order.key, cat("listener.byte_order: has no effect with ",
                                 text_datagram    ? "text datagram payloads"
                                 : raw_unprefixed ? "\"raw\" framing and reply_framing = \"raw\""
                                                  : "\"line\" framing",
                                 " (no length fields)"));
    }
    if (command && wire.json_frames()) {
      error(*command.key,
            "listener.command: applies only to \"length\", \"line\", \"raw\" and text "
            "datagram listeners (a json header names its own cmd)");
    }
  }

  if (!lookup(table, "name")) {
    listener.name = cat(kind_name, ":", is_inet(kind) ? listener.address : listener.path);
  }
  if (errors_.size() == errors_before) check_listener_tls(table, listener);
  return errors_.size() == errors_before;
}

// tls_cert and tls_key go together, tls_client_ca only with them, all on
// tcp listeners only; then the files are loaded, so an unreadable or
// mismatched one is a config error (at start, in --check-config, and a
// rejected reload) instead of a listener that fails every handshake.
void Validator::check_listener_tls(const toml::table& table, Listener& listener) {
  const Entry cert = lookup(table, "tls_cert");
  const Entry key = lookup(table, "tls_key");
  const Entry client_ca = lookup(table, "tls_client_ca");
  if (!cert && !key && !client_ca) return;
  if (listener.kind != ListenerKind::tcp) {
    for (const Entry& entry : {cert, key, client_ca}) {
      if (!entry) continue;
      error(*entry.key, cat("listener.", entry.key->str(), ": TLS applies only to tcp listeners, not ",
                            to_string(listener.kind)));
    }
    return;
  }
  if (cert && !key) {
    error(*cert.key, "listener.tls_cert: needs tls_key, the certificate's private key");
    return;
  }
  if (key && !cert) {
    error(*key.key, "listener.tls_key: needs tls_cert, the certificate chain it belongs to");
    return;
  }
  if (client_ca && !cert) {
    error(*client_ca.key, "listener.tls_client_ca: needs tls_cert and tls_key (the server's own certificate)");
    return;
  }
  if (!listener.tls_cert || !listener.tls_key) return;  // a value was wrong: reported already
  auto loaded = transport::TlsServerContext::load(
      transport::TlsFiles{*listener.tls_cert, *listener.tls_key, listener.tls_client_ca});
  if (!loaded.context) {
    error(*cert.node, cat("listener.tls_cert: ", loaded.error));
    return;
  }
  listener.tls_context = std::move(loaded.context);
}

// Two listeners may not share a name, nor an endpoint: the same kind on the
// same address (port 0 excepted: the kernel gives each its own port), or any
// two Unix sockets on one path (one file cannot be both a stream and a
// datagram socket).
void Validator::check_listener_clashes(const std::vector<const toml::table*>& tables,
                                       const std::vector<Listener>& listeners) {
  struct Seen {
    std::uint32_t line;
    bool default_name;
  };
  std::map<std::string, Seen> names;
  std::map<std::string, std::uint32_t> endpoints;

  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const toml::table& table = *tables[i];
    const Listener& listener = listeners[i];

    const Entry name_entry = lookup(table, "name");
    const toml::node& name_node = name_entry ? *name_entry.node : table;
    const bool default_name = !name_entry;
    const auto [name_it, name_new] =
        names.try_emplace(listener.name, Seen{name_node.source().begin.line, default_name});
    // Two default names only clash when the endpoints do, which is reported
    // below; or when both use port 0, which is no clash at all.
    if (!name_new && !(default_name && name_it->second.default_name)) {
      error(name_node, cat("listener.name: duplicate listener name ", quoted(listener.name),
                           " (first used at line ", std::to_string(name_it->second.line), ")"));
    }

    std::string endpoint;
    std::string message;
    const toml::node* endpoint_node = nullptr;
    if (is_inet(listener.kind)) {
      const auto parsed = parse_address(listener.address);
      if (parsed.value && parsed.value->port != 0) {
        const std::string canonical = parsed.value->canonical();
        // An http listener is a TCP socket: it clashes with a tcp one.
        const ListenerKind socket_kind = listener.kind == ListenerKind::http ? ListenerKind::tcp : listener.kind;
        endpoint = cat(to_string(socket_kind), " ", canonical);
        endpoint_node = lookup(table, "address").node;
        message =
            cat("listener.address: ", to_string(listener.kind), " ", quoted(listener.address));
        if (canonical != listener.address) message += cat(" (", canonical, ")");
      }
    } else {
      endpoint = cat("unix ", listener.path);
      endpoint_node = lookup(table, "path").node;
      message = cat("listener.path: ", quoted(listener.path));
    }
    if (endpoint_node != nullptr) {
      const auto [it, inserted] =
          endpoints.try_emplace(endpoint, endpoint_node->source().begin.line);
      if (!inserted) {
        error(*endpoint_node, cat(message, " is already used by the listener at line ",
                                  std::to_string(it->second)));
      }
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
    const std::size_t errors_before = errors_.size();
    Command command;
    command.name = name;
    walk<Command>(*command_table, command_rows(), label, cat("[", label, "]"), command);
    if (command.run_uid && !command.run_gid) command.run_gid = primary_group(*command.run_uid);
    if (plain && errors_.size() == errors_before) commands.emplace(name, std::move(command));
  }
}

void Validator::check_allowed_commands_exist(const toml::table* commands) {
  for (const auto& [node, name, label] : allowed_command_refs_) {
    if (commands != nullptr && commands->contains(name)) continue;
    error(*node, cat(label, ": no [commands.", name, "] is configured"));
  }
}

void Validator::read_principals(const toml::table& table, std::map<std::string, Principal>& principals) {
  for (const auto& [key, value] : table) {
    const std::string name(key.str());
    const std::string label = cat("principals.", name);
    const auto* principal_table = value.as_table();
    if (principal_table == nullptr) {
      error(value, cat(label, ": expected a table ([", label, "]), got ", type_phrase(value)));
      continue;
    }
    // Names show in replies, logs and stats: one plain word.
    const bool plain = is_plain_name(name);
    if (!plain) {
      error(key, cat(label, ": a principal name may hold only letters, digits, '_', '-' and '.'"));
    }
    const std::size_t errors_before = errors_.size();
    Principal principal;
    principal.name = name;
    walk<Principal>(*principal_table, principal_rows(), label, cat("[", label, "]"), principal);
    // (After an error in a credential key that key only looks absent.)
    if (errors_.size() == errors_before && !principal.token_sha256 && !principal.certificate_subject &&
        principal.unix_uids.empty()) {
      error(*principal_table, cat("[", label, "]: no token_sha256, certificate_subject or unix_uids: "
                                  "no client could ever be this principal"));
    }
    if (plain && errors_.size() == errors_before) principals.emplace(name, std::move(principal));
  }
}

// A credential names one principal: the same token hash, subject or uid under
// two would make who a client is depend on the order of the file.
void Validator::check_principal_credentials(const toml::table& table,
                                            const std::map<std::string, Principal>& principals) {
  std::map<std::string, std::string_view> tokens;
  std::map<std::string, std::string_view> subjects;
  std::map<std::uint32_t, std::string_view> uids;
  const auto clash = [&](const std::string& name, std::string_view key, std::string_view what,
                         std::string_view first) {
    const auto* principal_table = table.get(name);
    const toml::node* node = principal_table->as_table()->get(key);
    error(node != nullptr ? *node : *principal_table,
          cat("principals.", name, ".", key, ": ", what, " is already principal ", quoted(first), "'s"));
  };
  for (const auto& [name, principal] : principals) {
    if (principal.token_sha256) {
      const auto [it, fresh] = tokens.try_emplace(*principal.token_sha256, name);
      if (!fresh) clash(name, "token_sha256", "this token", it->second);
    }
    if (principal.certificate_subject) {
      const auto [it, fresh] = subjects.try_emplace(*principal.certificate_subject, name);
      if (!fresh) clash(name, "certificate_subject", "this subject", it->second);
    }
    for (const std::uint32_t uid : principal.unix_uids) {
      const auto [it, fresh] = uids.try_emplace(uid, name);
      if (!fresh) clash(name, "unix_uids", cat("uid ", std::to_string(uid)), it->second);
    }
  }
}

// auth = "token" with no token anywhere (or "certificate" with no subject)
// would refuse every client: a mistake, not a policy.
void Validator::check_listener_auth(const std::map<std::string, Principal>& principals) {
  for (const auto& [node, auth] : auth_refs_) {
    const bool passable = std::any_of(principals.begin(), principals.end(), [auth = auth](const auto& entry) {
      return auth == ListenerAuth::token ? entry.second.token_sha256.has_value()
                                         : entry.second.certificate_subject.has_value();
    });
    if (passable) continue;
    error(*node, auth == ListenerAuth::token
                     ? "listener.auth: \"token\" needs a [principals.NAME] with token_sha256"
                     : "listener.auth: \"certificate\" needs a [principals.NAME] with certificate_subject");
  }
}

// Every row of `rows` as a KeySpec under `prefix`.
template <typename Target>
void describe(const std::vector<Row<Target>>& rows, std::string_view prefix,
              std::vector<KeySpec>& out) {
  for (const auto& row : rows) {
    out.push_back(KeySpec{cat(prefix, ".", row.key), row.type, row.min, row.max,
                          row.reload == Reload::on_sighup});
  }
}

}  // namespace

// ---------------------------------------------------------------------------

std::vector<KeySpec> config_keys() {
  std::vector<KeySpec> keys;
  describe(daemon_rows(), "daemon", keys);
  describe(limit_rows(), "limits", keys);
  describe(listener_rows(), "listener", keys);
  describe(files_rows(), "files", keys);
  describe(command_rows(), "commands.*", keys);
  describe(principal_rows(), "principals.*", keys);
  describe(pubsub_rows(), "pubsub", keys);
  return keys;
}

bool key_is_reloadable(std::string_view dotted_key) {
  // "commands.date.timeout" is "commands.*.timeout": every command takes the
  // same keys, and so does every principal.
  std::string key(dotted_key);
  for (const std::string_view table : {std::string_view("commands."), std::string_view("principals.")}) {
    if (!dotted_key.starts_with(table)) continue;
    const std::size_t name_end = dotted_key.find('.', table.size());
    if (name_end != std::string_view::npos) key = cat(table, "*", dotted_key.substr(name_end));
  }
  for (const auto& spec : config_keys()) {
    if (spec.dotted_key == key) return spec.reloadable;
  }
  return false;
}

std::string_view to_string(ListenerKind kind) noexcept { return name_of(kKinds, kind); }
std::string_view to_string(LogLevel level) noexcept { return name_of(kLogLevels, level); }
std::string_view to_string(ExecContainment containment) noexcept { return name_of(kContainments, containment); }
std::string_view to_string(ListenerAuth auth) noexcept { return name_of(kAuths, auth); }
std::string_view to_string(FileAccess access) noexcept { return name_of(kFileAccess, access); }

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
