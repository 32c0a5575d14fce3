#pragma once
// The daemon's configuration as a validated value. Everything that reaches
// the server has passed validation: no field here needs re-checking.
// Built from TOML by load_config(); the contract is ../shared/CONFIG.md and
// every key is documented for operators in config/framed.toml.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/framing.hpp"
#include "config/redis_url.hpp"
#include "reactor/backend.hpp"
#include "transport/tls_context.hpp"

namespace framed::config {

// http: a TCP listener that speaks HTTP/1.1 (/metrics, /healthz, /), no framing.
enum class ListenerKind { tcp, udp, unix_stream, unix_dgram, http };
enum class LogLevel { trace, debug, info, warn, error };
// How what a command starts is ended with its run (lib/exec): a cgroup per
// run, the daemon as a child subreaper, or the command's process group only;
// automatic: the first of those the daemon can have.
enum class ExecContainment { automatic, cgroup, subreaper, process_group };
// How a stream listener's clients say who they are: not at all (the
// listener's own permissions apply), with a token (`auth` first), or with a
// client certificate (TLS).
enum class ListenerAuth { none, token, certificate };
// What a principal may do with [files].
enum class FileAccess { none, read, write };
// The wire vocabulary is the codec's (one set of names for config, codec and
// server); codec::to_string names these.
using Framing = codec::Framing;
using Payload = codec::Payload;
using ByteOrder = codec::ByteOrder;
using ReplyFraming = codec::ReplyFraming;

// Each enum value's name as written in the file ("tcp", "unix_dgram", "warn",
// ...), for log lines and listener names.
std::string_view to_string(ListenerKind kind) noexcept;
std::string_view to_string(LogLevel level) noexcept;
std::string_view to_string(ExecContainment containment) noexcept;
std::string_view to_string(ListenerAuth auth) noexcept;
std::string_view to_string(FileAccess access) noexcept;

struct Limits {
  std::uint64_t max_header = 65536;
  std::uint64_t max_body = 64ULL << 20;
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(300);
  std::chrono::nanoseconds header_timeout = std::chrono::seconds(10);
  // A started body (json body, length payload, put upload) must be complete
  // by body_timeout; every min_body_rate bytes received move that deadline
  // one second later (0: it never moves).
  std::chrono::nanoseconds body_timeout = std::chrono::seconds(10);
  std::uint64_t min_body_rate = 1024;
  std::uint32_t max_pending_replies = 1024;
  // Unsent events (pub/sub messages, exec output) past which a stream
  // connection is dropped as a slow subscriber.
  std::uint64_t max_event_backlog = 8ULL << 20;
  // Request and reply bytes the whole daemon holds in its buffers; [limits]
  // only (a listener's copy is [limits]'s).
  std::uint64_t max_buffered_total = 1ULL << 30;

  bool operator==(const Limits&) const = default;
};

struct Listener {
  std::string name;  // from the config, or "<kind>:<address|path>" when absent
  ListenerKind kind = ListenerKind::tcp;
  std::string address;  // tcp/udp: "host:port" or "[v6]:port", as written
  std::string path;     // unix/unix_dgram: filesystem path, or "@name" (abstract)
  std::uint32_t mode = 0660;
  Framing framing = Framing::json;
  Payload payload = Payload::text;
  ByteOrder byte_order = ByteOrder::big;
  ReplyFraming reply_framing = ReplyFraming::raw;  // raw framing only
  std::optional<std::string> command;  // every payload is this command's body
  int backlog = 511;                    // listen(2) backlog, as Redis and nginx
  Limits limits;                        // [limits] with this listener's overrides
  // The [commands.NAME] this listener may exec; absent: every configured one.
  // Each name is known to be configured.
  std::optional<std::vector<std::string>> allow_commands;
  // tcp and unix only: token or certificate means a client is a principal
  // before it may do anything (auth_required).
  ListenerAuth auth = ListenerAuth::none;
  // tcp and http only: open connections from one source address; 0: no limit.
  std::uint32_t max_connections_per_ip = 0;
  // tcp only: TLS with this certificate chain and key (both or neither);
  // with tls_client_ca, a client certificate signed by it is required.
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::optional<std::string> tls_client_ca;
  // The files above, loaded and checked when the config was read (each
  // load, a reload's too, reads them afresh); null without TLS.
  std::shared_ptr<const transport::TlsServerContext> tls_context;

  [[nodiscard]] codec::WireFormat wire_format() const noexcept {
    return {framing, payload, byte_order, reply_framing};
  }
  // A reload keeps a listener whose settings are all equal as it is.
  bool operator==(const Listener&) const = default;
};

struct Files {
  std::string root;  // an absolute path to an existing directory
  std::uint64_t max_file_size = 1ULL << 30;
  // A completed upload is fsynced, and its directory, before it is visible
  // and before the reply.
  bool fsync = true;
  // Names with '/' are allowed (directories created on put, beneath root).
  bool allow_subdirs = false;
  // A failed upload is kept this long for a put with offset (0: none is).
  std::chrono::nanoseconds resume_window = std::chrono::minutes(10);
  // Failed uploads kept at once; past it the oldest goes.
  std::uint32_t max_partials = 16;
};

struct Command {
  std::string name;
  std::vector<std::string> argv;  // argv[0] is an absolute path to an executable
  bool allow_args = false;
  std::chrono::nanoseconds timeout = std::chrono::seconds(10);
  std::uint64_t max_output = 1ULL << 20;
  // The child's whole environment; the default is a minimal PATH and nothing
  // of the daemon's own environment.
  std::map<std::string, std::string> env{{"PATH", "/usr/bin:/bin"}};
  std::string cwd = "/";  // an existing directory, absolute
  // Resource limits set in the child before it execs; absent: inherited.
  std::optional<std::uint64_t> rlimit_cpu;     // seconds of CPU time
  std::optional<std::uint64_t> rlimit_as;      // bytes of address space
  std::optional<std::uint64_t> rlimit_nofile;  // open files
  std::optional<std::uint64_t> rlimit_nproc;   // processes of the command's user
  std::uint32_t max_concurrent = 0;            // runs at once (queued or running); 0 = no limit of its own
  // `user` / `group`, resolved when the file is read: the ids the command
  // runs as (a daemon running as root); absent: the daemon's own. A user
  // without a group runs with the user's primary group.
  std::optional<std::uint32_t> run_uid;
  std::optional<std::uint32_t> run_gid;
  // Unix-socket peers only (SO_PEERCRED), when either is non-empty: the
  // peer's uid is in allow_uids, or its primary or a supplementary group in
  // allow_gids. Empty both: anyone who can reach a listener that allows it.
  std::vector<std::uint32_t> allow_uids;
  std::vector<std::uint32_t> allow_gids;
};

// [principals.NAME]: who a client is once authenticated, and what it may do.
// Each credential (a token's hash, a certificate subject, a uid) names at
// most one principal.
struct Principal {
  std::string name;
  std::optional<std::string> token_sha256;         // 64 lowercase hex digits
  std::optional<std::string> certificate_subject;  // "CN=deploy", or a SAN
  std::vector<std::uint32_t> unix_uids;            // Unix stream peers (SO_PEERCRED)
  // Exec names; absent: the listener's. Each name is known to be configured.
  std::optional<std::vector<std::string>> allow_commands;
  FileAccess files = FileAccess::none;
  std::vector<std::string> channels;  // pub/sub channel globs (fnmatch); empty: none
  std::uint32_t rate = 0;             // requests per second; 0: no limit

  bool operator==(const Principal&) const = default;
};

struct Daemon {
  unsigned workers = 0;  // 0 = number of CPUs
  std::uint32_t max_queued_jobs = 256;  // jobs waiting for a busy worker pool; past it: too_busy
  reactor::BackendChoice backend = reactor::BackendChoice::automatic;
  LogLevel log_level = LogLevel::info;
  std::uint32_t max_connections = 10000;
  std::chrono::nanoseconds shutdown_timeout = std::chrono::seconds(10);
  ExecContainment exec_containment = ExecContainment::automatic;
  unsigned reactors = 1;  // reactor threads; 0 = number of CPUs
  bool pin_reactors = false;  // reactor i on the i-th CPU the process may use
};

// [pubsub]: the bridge that carries publishes between framed hosts through
// Redis (docs/pubsub.md, "Across hosts"). Both keys take effect at start.
struct Pubsub {
  std::optional<RedisEndpoint> bridge;  // absent: no bridge, channels are this host's alone
  std::string bridge_prefix = "framed:";  // Redis channel = prefix + channel

  bool operator==(const Pubsub&) const = default;
};

struct Config {
  std::string source;  // the file it came from; empty for built-in defaults
  Daemon daemon;
  Limits limits;  // the [limits] table, before per-listener overrides
  std::vector<Listener> listeners;
  std::optional<Files> files;           // absent: put/get/list answer forbidden
  std::map<std::string, Command> commands;  // by exec name
  std::map<std::string, Principal> principals;  // by name
  Pubsub pubsub;
};

// One problem found in a file: rendered "FILE:LINE:COLUMN: message", or
// "FILE: message" when it has no position (missing file, I/O error).
struct ConfigError {
  std::string file;
  std::uint32_t line = 0;    // 1-based; 0 = no position
  std::uint32_t column = 0;  // 1-based; 0 = no position
  std::string message;
  [[nodiscard]] std::string to_string() const;
};

struct LoadResult {
  std::optional<Config> config;     // set only when errors is empty
  std::vector<ConfigError> errors;  // every error found, in file order
};

// Parses and validates a TOML file. Never throws; never binds or opens
// anything but the file itself.
LoadResult load_config(const std::string& path);
// The same, from text already in memory (tests; `source` names it in errors).
LoadResult parse_config(std::string_view toml_text, const std::string& source);
// The built-in defaults used when no --config is given (CONFIG.md, "Defaults").
Config default_config();

}  // namespace framed::config
