// Tests for daemon/config: TOML -> validated Config, per the contract (CONFIG.md).
//
// Every error test pins the exact LINE:COLUMN the operator will see, since
// `framed --check-config` prints them and editors jump to them. Positions are
// 1-based; a value error points at the value, an "unknown key" or "key not
// allowed here" error at the key, a "missing key" error at the table header.

#include "config/config.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

#include "config/address.hpp"
#include "config/schema.hpp"
#include "config/units.hpp"

using namespace std::chrono_literals;
using framed::config::ByteOrder;
using framed::config::Config;
using framed::config::ConfigError;
using framed::config::Framing;
using framed::config::ListenerKind;
using framed::config::LoadResult;
using framed::config::LogLevel;
using framed::config::Payload;
using framed::reactor::BackendChoice;

namespace {

constexpr const char* kSource = "test.toml";

LoadResult parse(std::string_view text) { return framed::config::parse_config(text, kSource); }

std::string all_errors(const LoadResult& result) {
  std::string out;
  for (const auto& error : result.errors) out += error.to_string() + "\n";
  return out;
}

// The parse succeeded with no error at all.
const Config& require_ok(const LoadResult& result) {
  INFO(all_errors(result));
  REQUIRE(result.errors.empty());
  REQUIRE(result.config.has_value());
  return *result.config;
}

// Exactly one error, at line:column, whose message contains `part`.
void require_error(const LoadResult& result, std::uint32_t line, std::uint32_t column,
                   std::string_view part) {
  INFO(all_errors(result));
  REQUIRE_FALSE(result.config.has_value());
  REQUIRE(result.errors.size() == 1);
  const ConfigError& error = result.errors.front();
  CHECK(error.file == kSource);
  CHECK(error.line == line);
  CHECK(error.column == column);
  CHECK_THAT(error.message, Catch::Contains(std::string(part)));
}

// A file on disk, removed when the test ends.
class TempFile {
 public:
  explicit TempFile(std::string_view contents, mode_t mode = 0600) {
    char name[] = "/tmp/framed_config_test_XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path_ = name;
    std::ofstream(path_) << contents;
    ::chmod(path_.c_str(), mode);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { std::remove(path_.c_str()); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// CONFIG.md's example, verbatim except for the argv paths: /usr/bin/uptime
// (procps) may be missing on a bare machine and /usr/bin/grep is /bin/grep
// without merged /usr; /bin/true and /bin/grep exist on every Debian 12.
constexpr std::string_view kContractExample = R"([daemon]
workers = 4                 # worker-pool threads; 0 = number of CPUs
backend = "auto"            # "auto" | "io_uring" | "epoll"
log_level = "info"          # trace debug info warn error
max_connections = 10000
shutdown_timeout = "10s"

[limits]                    # defaults for every listener; a listener may override
max_header = 65536          # bytes
max_body = 67108864         # bytes, for bodies held in memory
idle_timeout = "300s"       # close a connection silent this long
max_pending_replies = 1024  # per connection; past it the daemon stops reading

[[listener]]
kind = "tcp"                # "tcp" | "udp" | "unix" | "unix_dgram"
address = "127.0.0.1:9000"  # "[::1]:9000" for IPv6
framing = "json"            # "json" | "length" | "line" | "datagram"

[[listener]]
kind = "udp"
address = "127.0.0.1:9000"
framing = "datagram"
payload = "text"            # "text" | "json"
command = "upper"           # optional: every message is this command's body

[[listener]]
kind = "unix"
path = "/run/framed/framed.sock"
mode = "0660"
framing = "length"
byte_order = "big"

[files]
root = "/srv"                    # absent = put/get/list disabled
max_file_size = "4GiB"

[commands.uptime]           # exec name = "uptime"
argv = ["/bin/true"]
timeout = "5s"
max_output = "1MiB"

[commands.grep]
argv = ["/bin/grep", "-n"]
allow_args = true           # client args are appended as separate argv items, never through a shell
timeout = "2s"
)";

}  // namespace

// ---------------------------------------------------------------------------
// Defaults

TEST_CASE("default_config is CONFIG.md's Defaults table", "[config]") {
  const Config config = framed::config::default_config();
  CHECK(config.source.empty());

  CHECK(config.daemon.workers == 0);
  CHECK(config.daemon.backend == BackendChoice::automatic);
  CHECK(config.daemon.log_level == LogLevel::info);
  CHECK(config.daemon.max_connections == 10000);
  CHECK(config.daemon.shutdown_timeout == 10s);
  CHECK(config.daemon.exec_containment == framed::config::ExecContainment::automatic);

  CHECK(config.limits.max_header == 65536);
  CHECK(config.limits.max_body == 67108864);
  CHECK(config.limits.idle_timeout == 300s);
  CHECK(config.limits.header_timeout == 10s);
  CHECK(config.limits.max_pending_replies == 1024);

  REQUIRE(config.listeners.size() == 2);
  const auto& tcp = config.listeners[0];
  CHECK(tcp.kind == ListenerKind::tcp);
  CHECK(tcp.address == "127.0.0.1:9000");
  CHECK(tcp.framing == Framing::json);
  CHECK(tcp.name == "tcp:127.0.0.1:9000");
  CHECK(tcp.byte_order == ByteOrder::big);
  CHECK_FALSE(tcp.command.has_value());
  CHECK(tcp.limits.max_body == config.limits.max_body);

  const auto& udp = config.listeners[1];
  CHECK(udp.kind == ListenerKind::udp);
  CHECK(udp.address == "127.0.0.1:9000");
  CHECK(udp.framing == Framing::datagram);
  CHECK(udp.payload == Payload::text);
  CHECK(udp.name == "udp:127.0.0.1:9000");

  CHECK_FALSE(config.files.has_value());  // files off
  CHECK(config.commands.empty());         // exec off
}

TEST_CASE("an empty file is valid, has no listeners and default everything", "[config]") {
  // No listener is fine at parse time: socket activation may supply the fds.
  const auto result = parse("");
  const Config& config = require_ok(result);
  CHECK(config.source == kSource);
  CHECK(config.listeners.empty());
  CHECK(config.daemon.max_connections == 10000);
  CHECK(config.limits.header_timeout == 10s);
  CHECK_FALSE(config.files.has_value());
  CHECK(config.commands.empty());
}

TEST_CASE("key defaults inside tables", "[config]") {
  const auto result = parse(R"([files]
root = "/srv"

[commands.date]
argv = ["/bin/date"]

[[listener]]
kind = "unix"
path = "/tmp/framed-test.sock"

[[listener]]
kind = "unix_dgram"
path = "@framed-test"
)");
  const Config& config = require_ok(result);
  REQUIRE(config.files.has_value());
  CHECK(config.files->root == "/srv");
  CHECK(config.files->max_file_size == (1ULL << 30));
  CHECK(config.files->fsync);
  CHECK_FALSE(config.files->allow_subdirs);
  CHECK(config.files->resume_window == 10min);
  CHECK(config.files->max_partials == 16);

  REQUIRE(config.commands.count("date") == 1);
  const auto& date = config.commands.at("date");
  CHECK(date.name == "date");
  CHECK(date.argv == std::vector<std::string>{"/bin/date"});
  CHECK(date.timeout == 10s);
  CHECK(date.max_output == (1ULL << 20));
  CHECK_FALSE(date.allow_args);

  REQUIRE(config.listeners.size() == 2);
  const auto& stream = config.listeners[0];
  CHECK(stream.kind == ListenerKind::unix_stream);
  CHECK(stream.framing == Framing::json);
  CHECK(stream.mode == 0660);
  CHECK(stream.backlog == 511);
  CHECK(stream.name == "unix:/tmp/framed-test.sock");
  const auto& dgram = config.listeners[1];
  CHECK(dgram.kind == ListenerKind::unix_dgram);
  CHECK(dgram.framing == Framing::datagram);
  CHECK(dgram.payload == Payload::text);
  CHECK(dgram.path == "@framed-test");
  CHECK(dgram.name == "unix_dgram:@framed-test");
}

// ---------------------------------------------------------------------------
// The contract's example

TEST_CASE("CONFIG.md's example parses to the values it states", "[config]") {
  const auto result = parse(kContractExample);
  const Config& config = require_ok(result);

  CHECK(config.daemon.workers == 4);
  CHECK(config.daemon.backend == BackendChoice::automatic);
  CHECK(config.daemon.log_level == LogLevel::info);
  CHECK(config.daemon.max_connections == 10000);
  CHECK(config.daemon.shutdown_timeout == 10s);

  CHECK(config.limits.max_header == 65536);
  CHECK(config.limits.max_body == 67108864);
  CHECK(config.limits.idle_timeout == 300s);
  CHECK(config.limits.header_timeout == 10s);  // not in the example: default
  CHECK(config.limits.max_pending_replies == 1024);

  REQUIRE(config.listeners.size() == 3);
  const auto& tcp = config.listeners[0];
  CHECK(tcp.kind == ListenerKind::tcp);
  CHECK(tcp.address == "127.0.0.1:9000");
  CHECK(tcp.framing == Framing::json);
  CHECK(tcp.name == "tcp:127.0.0.1:9000");
  CHECK_FALSE(tcp.command.has_value());

  const auto& udp = config.listeners[1];
  CHECK(udp.kind == ListenerKind::udp);
  CHECK(udp.address == "127.0.0.1:9000");
  CHECK(udp.framing == Framing::datagram);
  CHECK(udp.payload == Payload::text);
  CHECK(udp.command == std::optional<std::string>("upper"));
  CHECK(udp.name == "udp:127.0.0.1:9000");

  const auto& unix_listener = config.listeners[2];
  CHECK(unix_listener.kind == ListenerKind::unix_stream);
  CHECK(unix_listener.path == "/run/framed/framed.sock");
  CHECK(unix_listener.mode == 0660);
  CHECK(unix_listener.framing == Framing::length);
  CHECK(unix_listener.byte_order == ByteOrder::big);
  CHECK(unix_listener.name == "unix:/run/framed/framed.sock");
  CHECK(unix_listener.limits.max_pending_replies == 1024);

  REQUIRE(config.files.has_value());
  // The contract's example says /var/lib/framed/files; the root must exist
  // when the config is checked, so this copy names one that does.
  CHECK(config.files->root == "/srv");
  CHECK(config.files->max_file_size == 4ULL * 1024 * 1024 * 1024);

  REQUIRE(config.commands.size() == 2);
  const auto& uptime = config.commands.at("uptime");
  CHECK(uptime.name == "uptime");
  CHECK(uptime.argv == std::vector<std::string>{"/bin/true"});
  CHECK(uptime.timeout == 5s);
  CHECK(uptime.max_output == 1024 * 1024);
  CHECK_FALSE(uptime.allow_args);
  const auto& grep = config.commands.at("grep");
  CHECK(grep.argv == std::vector<std::string>{"/bin/grep", "-n"});
  CHECK(grep.allow_args);
  CHECK(grep.timeout == 2s);
  CHECK(grep.max_output == 1024 * 1024);
}

TEST_CASE("load_config reads a file and names it in Config::source", "[config]") {
  TempFile file(kContractExample);
  const auto result = framed::config::load_config(file.path());
  const Config& config = require_ok(result);
  CHECK(config.source == file.path());
  CHECK(config.listeners.size() == 3);
}

// ---------------------------------------------------------------------------
// Listeners: defaults and per-listener limits

TEST_CASE("a listener's limits are [limits] merged with its own overrides", "[config]") {
  const auto result = parse(R"([limits]
max_header = "1KiB"
max_body = "2MiB"
idle_timeout = "1m"

[[listener]]
kind = "tcp"
address = "127.0.0.1:9000"

[[listener]]
kind = "tcp"
name = "strict"
address = "127.0.0.1:9001"
framing = "line"
max_header = 512
max_body = 0
idle_timeout = "1.5s"
header_timeout = "250ms"
max_pending_replies = 8
)");
  const Config& config = require_ok(result);
  CHECK(config.limits.max_header == 1024);
  CHECK(config.limits.max_body == 2 * 1024 * 1024);
  CHECK(config.limits.idle_timeout == 60s);
  CHECK(config.limits.header_timeout == 10s);
  CHECK(config.limits.max_pending_replies == 1024);

  REQUIRE(config.listeners.size() == 2);
  const auto& inherited = config.listeners[0].limits;
  CHECK(inherited.max_header == 1024);
  CHECK(inherited.max_body == 2 * 1024 * 1024);
  CHECK(inherited.idle_timeout == 60s);
  CHECK(inherited.header_timeout == 10s);
  CHECK(inherited.max_pending_replies == 1024);

  const auto& strict = config.listeners[1];
  CHECK(strict.name == "strict");
  CHECK(strict.framing == Framing::line);
  CHECK(strict.limits.max_header == 512);
  CHECK(strict.limits.max_body == 0);
  CHECK(strict.limits.idle_timeout == 1500ms);
  CHECK(strict.limits.header_timeout == 250ms);
  CHECK(strict.limits.max_pending_replies == 8);
}

TEST_CASE("listener keys that each kind takes", "[config]") {
  const auto result = parse(R"([[listener]]
kind = "tcp"
address = "[::1]:0"
framing = "length"
byte_order = "little"
command = "echo"
backlog = 4096

[[listener]]
kind = "udp"
address = "0.0.0.0:0"
payload = "json"
byte_order = "little"

[[listener]]
kind = "unix"
path = "/tmp/a.sock"
mode = "600"
framing = "line"
command = "upper"
)");
  const Config& config = require_ok(result);
  REQUIRE(config.listeners.size() == 3);
  CHECK(config.listeners[0].address == "[::1]:0");
  CHECK(config.listeners[0].framing == Framing::length);
  CHECK(config.listeners[0].byte_order == ByteOrder::little);
  CHECK(config.listeners[0].command == std::optional<std::string>("echo"));
  CHECK(config.listeners[0].backlog == 4096);
  CHECK(config.listeners[1].payload == Payload::json);
  CHECK(config.listeners[1].byte_order == ByteOrder::little);
  CHECK(config.listeners[2].mode == 0600);
  CHECK(config.listeners[2].framing == Framing::line);
}

TEST_CASE("listener clashes", "[config]") {
  SECTION("two port-0 listeners, and tcp beside udp on one address, are fine") {
    const auto result = parse(R"([[listener]]
kind = "tcp"
address = "127.0.0.1:0"
[[listener]]
kind = "tcp"
address = "127.0.0.1:0"
[[listener]]
kind = "tcp"
address = "127.0.0.1:9000"
[[listener]]
kind = "udp"
address = "127.0.0.1:9000"
)");
    CHECK(require_ok(result).listeners.size() == 4);
  }
  SECTION("duplicate name") {
    require_error(parse(R"([[listener]]
kind = "tcp"
name = "api"
address = "127.0.0.1:9000"

[[listener]]
kind = "tcp"
name = "api"
address = "127.0.0.1:9001"
)"),
                  8, 8, "duplicate listener name \"api\" (first used at line 3)");
  }
  SECTION("an explicit name equal to another listener's default name") {
    require_error(parse(R"([[listener]]
kind = "tcp"
address = "127.0.0.1:9000"
[[listener]]
kind = "tcp"
name = "tcp:127.0.0.1:9000"
address = "127.0.0.1:9001"
)"),
                  6, 8, "duplicate listener name \"tcp:127.0.0.1:9000\"");
  }
  SECTION("same kind and address, however the address is written") {
    require_error(parse(R"([[listener]]
kind = "tcp"
address = "[::1]:9000"
[[listener]]
kind = "tcp"
name = "other"
address = "[0:0::1]:9000"
)"),
                  7, 11,
                  "tcp \"[0:0::1]:9000\" ([::1]:9000) is already used by the listener at line 3");
  }
  SECTION("two unix sockets on one path, whatever their kinds") {
    require_error(parse(R"([[listener]]
kind = "unix"
path = "/tmp/x.sock"
[[listener]]
kind = "unix_dgram"
path = "/tmp/x.sock"
)"),
                  6, 8, "\"/tmp/x.sock\" is already used by the listener at line 3");
  }
}

// ---------------------------------------------------------------------------
// Error kinds, one by one, each with its position

TEST_CASE("syntax errors carry toml++'s position", "[config][errors]") {
  require_error(parse("[daemon]\nworkers = \n"), 2, 11, "expected value");
  require_error(parse("[daemon]\nworkers = 1\nworkers = 2\n"), 3, 11, "workers");
}

TEST_CASE("unknown keys are errors, with a suggestion when close", "[config][errors]") {
  require_error(parse("[daemon]\nmax_conections = 5\n"), 2, 1,
                "unknown key 'max_conections' in [daemon]; did you mean 'max_connections'?");
  require_error(parse("lisener = 1\n"), 1, 1,
                "unknown key 'lisener' in the top level; did you mean 'listener'?");
  require_error(parse("[limits]\n  max_bdy = 5\n"), 2, 3,
                "unknown key 'max_bdy' in [limits]; did you mean 'max_body'?");
  require_error(
      parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nreuseport = true\n"), 4, 1,
      "unknown key 'reuseport' in [[listener]]");
  require_error(parse("[files]\nroot = \"/srv\"\nroot_dir = \"/srv\"\n"), 3, 1,
                "unknown key 'root_dir' in [files]");
  require_error(parse("[commands.date]\nargv = [\"/bin/date\"]\nallow_arg = true\n"), 3, 1,
                "unknown key 'allow_arg' in [commands.date]; did you mean 'allow_args'?");
  // Far from everything: no suggestion.
  const auto far = parse("[daemon]\nzzz = 1\n");
  require_error(far, 2, 1, "unknown key 'zzz' in [daemon]");
  CHECK_THAT(far.errors.front().message, !Catch::Contains("did you mean"));
}

TEST_CASE("wrong types", "[config][errors]") {
  require_error(parse("[daemon]\nworkers = \"4\"\n"), 2, 11,
                "daemon.workers: expected an integer, got a string");
  require_error(parse("daemon = 5\n"), 1, 10,
                "daemon: expected a table ([daemon]), got an integer");
  require_error(parse("listener = {kind = \"tcp\"}\n"), 1, 12,
                "listener: expected an array of tables ([[listener]]), got a table");
  require_error(parse("[limits]\nmax_body = 1.5\n"), 2, 12,
                "limits.max_body: expected a size (an integer number of bytes, or a string like "
                "\"4GiB\"), got a float");
  require_error(parse("[limits]\nidle_timeout = 300\n"), 2, 16,
                "limits.idle_timeout: expected a duration string like \"10s\"");
  require_error(parse("[commands.a]\nargv = [\"/bin/true\"]\nallow_args = \"yes\"\n"), 3, 14,
                "commands.a.allow_args: expected true or false, got a string");
  require_error(parse("[commands]\na = 1\n"), 2, 5,
                "commands.a: expected a table ([commands.a]), got an integer");
  require_error(
      parse("[[listener]]\nkind = 1\n"), 2, 8,
      "listener.kind: expected one of \"tcp\", \"udp\", \"unix\", \"unix_dgram\" or \"http\", got an "
      "integer");
}

TEST_CASE("daemon.exec_containment takes each mode by name", "[config]") {
  using framed::config::ExecContainment;
  for (const auto& [name, mode] : {std::pair{"auto", ExecContainment::automatic},
                                   std::pair{"cgroup", ExecContainment::cgroup},
                                   std::pair{"subreaper", ExecContainment::subreaper},
                                   std::pair{"process_group", ExecContainment::process_group}}) {
    INFO(name);
    const auto result = parse(std::string("[daemon]\nexec_containment = \"") + name + "\"\n");
    CHECK(require_ok(result).daemon.exec_containment == mode);
    CHECK(framed::config::to_string(mode) == name);
  }
}

TEST_CASE("bad enum values list the allowed ones", "[config][errors]") {
  require_error(
      parse("[daemon]\nbackend = \"kqueue\"\n"), 2, 11,
      "daemon.backend: unknown value \"kqueue\"; expected \"auto\", \"io_uring\" or \"epoll\"");
  require_error(parse("[daemon]\nlog_level = \"verbose\"\n"), 2, 13,
                "expected \"trace\", \"debug\", \"info\", \"warn\" or \"error\"");
  require_error(parse("[daemon]\nexec_containment = \"cgroups\"\n"), 2, 20,
                "daemon.exec_containment: unknown value \"cgroups\"; expected \"auto\", \"cgroup\", "
                "\"subreaper\" or \"process_group\"");
  require_error(parse("[[listener]]\nkind = \"tpc\"\n"), 2, 8,
                "listener.kind: unknown value \"tpc\"; expected \"tcp\", \"udp\", \"unix\", "
                "\"unix_dgram\" or \"http\"");
  require_error(
      parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nframing = \"http\"\n"), 4, 11,
      "expected \"json\", \"length\", \"line\", \"datagram\" or \"raw\"");
  require_error(
      parse("[[listener]]\nkind = \"udp\"\naddress = \"127.0.0.1:1\"\npayload = \"xml\"\n"), 4, 11,
      "listener.payload: unknown value \"xml\"; expected \"text\" or \"json\"");
  require_error(
      parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nbyte_order = \"middle\"\n"),
      4, 14, "expected \"big\" or \"little\"");
}

TEST_CASE("bad sizes and durations in the file", "[config][errors]") {
  require_error(parse("[limits]\nmax_header = \"64KB\"\n"), 2, 14,
                "limits.max_header: invalid size \"64KB\"");
  require_error(parse("[limits]\nmax_body = -1\n"), 2, 12, "limits.max_body: must not be negative");
  require_error(parse("[files]\nroot = \"/srv\"\nmax_file_size = \"1.5GiB\"\n"), 3, 17,
                "fractions are not allowed");
  require_error(parse("[daemon]\nshutdown_timeout = \"10\"\n"), 2, 20,
                "daemon.shutdown_timeout: invalid duration \"10\": missing unit");
  require_error(parse("[commands.a]\nargv = [\"/bin/true\"]\ntimeout = \"5 s\"\n"), 3, 11,
                "commands.a.timeout: invalid duration \"5 s\"");
  require_error(parse("[commands.a]\nargv = [\"/bin/true\"]\nmax_output = \"1MB\"\n"), 3, 14,
                "commands.a.max_output: invalid size \"1MB\"");
}

TEST_CASE("bad addresses", "[config][errors]") {
  const auto listener = [](std::string_view address) {
    return parse(std::string("[[listener]]\nkind = \"tcp\"\naddress = \"") + std::string(address) +
                 "\"\n");
  };
  require_error(listener("localhost:9000"), 3, 11, "host names are not resolved");
  require_error(listener("127.0.0.1"), 3, 11, "missing \":PORT\"");
  require_error(listener("127.0.0.1:65536"), 3, 11, "port must be a number from 0 to 65535");
  require_error(listener("::1:9000"), 3, 11, "write an IPv6 address in brackets");
  require_error(listener("[::1]"), 3, 11, "missing \":PORT\"");
  require_error(listener(":9000"), 3, 11, "missing host");
  require_error(listener(""), 3, 11, "listener.address: must not be empty");
}

TEST_CASE("missing required keys point at the table header", "[config][errors]") {
  require_error(parse("[daemon]\n\n  [[listener]]\n  name = \"x\"\n"), 3, 3,
                "[[listener]]: missing required key 'kind'");
  require_error(parse("[[listener]]\nkind = \"tcp\"\n"), 1, 1, "a tcp listener needs 'address'");
  require_error(parse("[[listener]]\nkind = \"udp\"\n"), 1, 1, "a udp listener needs 'address'");
  require_error(parse("[[listener]]\nkind = \"unix\"\n"), 1, 1, "a unix listener needs 'path'");
  require_error(parse("[[listener]]\nkind = \"unix_dgram\"\n"), 1, 1,
                "a unix_dgram listener needs 'path'");
  require_error(parse("[files]\nmax_file_size = \"1GiB\"\n"), 1, 1,
                "[files]: missing required key 'root'");
  require_error(parse("[commands.date]\ntimeout = \"1s\"\n"), 1, 1,
                "[commands.date]: missing required key 'argv'");
}

TEST_CASE("keys that do not apply to a listener's kind or framing", "[config][errors]") {
  SECTION("path on tcp, address on unix") {
    require_error(parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\npath = \"/x\"\n"),
                  4, 1, "listener.path: a tcp listener takes 'address', not 'path'");
    require_error(
        parse("[[listener]]\nkind = \"unix\"\npath = \"/x\"\naddress = \"127.0.0.1:1\"\n"), 4, 1,
        "listener.address: a unix listener takes 'path', not 'address'");
  }
  SECTION("mode: octal string, unix only, not on abstract sockets") {
    const auto with_mode = [](std::string_view mode) {
      return parse(std::string("[[listener]]\nkind = \"unix\"\npath = \"/x\"\nmode = ") +
                   std::string(mode) + "\n");
    };
    require_error(with_mode("660"), 4, 8, "listener.mode: expected an octal string like \"0660\"");
    require_error(with_mode("\"rw\""), 4, 8, "expected an octal string like \"0660\"");
    require_error(with_mode("\"0960\""), 4, 8, "expected an octal string like \"0660\"");
    require_error(with_mode("\"66\""), 4, 8, "expected an octal string like \"0660\"");
    require_error(with_mode("\"4755\""), 4, 8, "at most \"0777\"");
    require_error(
        parse("[[listener]]\nkind = \"udp\"\naddress = \"127.0.0.1:1\"\nmode = \"0660\"\n"), 4, 1,
        "listener.mode: applies only to unix and unix_dgram listeners");
    require_error(parse("[[listener]]\nkind = \"unix\"\npath = \"@abc\"\nmode = \"0660\"\n"), 4, 1,
                  "abstract socket");
  }
  SECTION("unix paths") {
    require_error(parse("[[listener]]\nkind = \"unix\"\npath = \"@\"\n"), 3, 8,
                  "an abstract socket needs a name");
    require_error(
        parse("[[listener]]\nkind = \"unix\"\npath = \"/" + std::string(107, 'a') + "\"\n"), 3, 8,
        "too long for a Unix socket (108 bytes; at most 107)");
    CHECK(parse("[[listener]]\nkind = \"unix\"\npath = \"/" + std::string(106, 'a') + "\"\n")
              .errors.empty());
  }
  SECTION("stream framings on datagram kinds and back") {
    require_error(
        parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nframing = \"datagram\"\n"),
        4, 11, "\"datagram\" is for udp and unix_dgram listeners");
    require_error(parse("[[listener]]\nkind = \"unix\"\npath = \"/x\"\nframing = \"datagram\"\n"),
                  4, 11, "a unix listener takes \"json\", \"length\", \"line\" or \"raw\"");
    require_error(
        parse("[[listener]]\nkind = \"udp\"\naddress = \"127.0.0.1:1\"\nframing = \"json\"\n"), 4,
        11, "a udp listener's framing must be \"datagram\", got \"json\"");
    require_error(parse("[[listener]]\nkind = \"unix_dgram\"\npath = \"/x\"\nframing = \"line\"\n"),
                  4, 11, "a unix_dgram listener's framing must be \"datagram\"");
  }
  SECTION("payload only with datagram framing") {
    require_error(
        parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\npayload = \"json\"\n"), 4,
        1, "listener.payload: applies only to datagram framing");
  }
  SECTION("byte_order only where there are length fields") {
    require_error(parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nframing = "
                        "\"line\"\nbyte_order = \"big\"\n"),
                  5, 1, "has no effect with \"line\" framing");
    require_error(
        parse("[[listener]]\nkind = \"udp\"\naddress = \"127.0.0.1:1\"\nbyte_order = \"little\"\n"),
        4, 1, "has no effect with text datagram payloads");
  }
  SECTION("command only where messages carry no command name") {
    require_error(
        parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ncommand = \"upper\"\n"), 4,
        1, "listener.command: applies only to \"length\", \"line\", \"raw\" and text datagram");
    require_error(parse("[[listener]]\nkind = \"udp\"\naddress = \"127.0.0.1:1\"\npayload = "
                        "\"json\"\ncommand = \"upper\"\n"),
                  5, 1, "listener.command: applies only to");
    require_error(
        parse("[[listener]]\nkind = \"udp\"\naddress = \"127.0.0.1:1\"\ncommand = \"up per\"\n"), 4,
        11, "a command name has no spaces");
  }
  SECTION("backlog only on stream listeners") {
    require_error(parse("[[listener]]\nkind = \"udp\"\naddress = \"127.0.0.1:1\"\nbacklog = 5\n"),
                  4, 1, "listener.backlog: a udp listener does not listen()");
  }
}

TEST_CASE("integers out of range", "[config][errors]") {
  require_error(parse("[daemon]\nworkers = -1\n"), 2, 11,
                "daemon.workers: must be from 0 to 1024, got -1");
  require_error(parse("[daemon]\nworkers = 1025\n"), 2, 11, "must be from 0 to 1024, got 1025");
  require_error(parse("[daemon]\nmax_connections = 0\n"), 2, 19,
                "daemon.max_connections: must be from 1 to 4294967295, got 0");
  require_error(parse("[daemon]\nmax_connections = 4294967296\n"), 2, 19,
                "must be from 1 to 4294967295");
  require_error(parse("[limits]\nmax_pending_replies = 0\n"), 2, 23,
                "limits.max_pending_replies: must be from 1 to 4294967295, got 0");
  require_error(parse("[limits]\nmax_header = 0\n"), 2, 14,
                "limits.max_header: must be at least 1 bytes, got 0");
  require_error(
      parse("[limits]\nmax_header = \"4GiB\"\n"), 2, 14,
      "limits.max_header: must be at most 4294967295 bytes (a json header length is a u32)");
  require_error(parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nbacklog = 0\n"), 4,
                11, "listener.backlog: must be from 1 to 65535, got 0");
  require_error(parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nbacklog = 65536\n"),
                4, 11, "must be from 1 to 65535, got 65536");
  require_error(
      parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nmax_pending_replies = "
            "0\n"),
      4, 23, "listener.max_pending_replies: must be from 1");
  require_error(parse("[limits]\nidle_timeout = \"0s\"\n"), 2, 16,
                "limits.idle_timeout: must be greater than zero");
  require_error(parse("[commands.a]\nargv = [\"/bin/true\"]\ntimeout = \"0ms\"\n"), 3, 11,
                "commands.a.timeout: must be greater than zero");
  // shutdown_timeout = "0s" means "do not wait": allowed.
  CHECK(require_ok(parse("[daemon]\nshutdown_timeout = \"0s\"\n")).daemon.shutdown_timeout == 0s);
}

TEST_CASE("files", "[config][errors]") {
  require_error(parse("[files]\nroot = \"\"\n"), 2, 8, "files.root: must not be empty");
  require_error(parse("[files]\nroot = 1\n"), 2, 8,
                "files.root: expected a string, got an integer");
  require_error(parse("[files]\nroot = \"/srv\"\nmax_file_size = 0\n"), 3, 17,
                "files.max_file_size: must be at least 1 bytes");
  // The root must be an existing directory, given absolutely: checked at
  // start, by --check-config and at reload.
  require_error(parse("[files]\nroot = \"srv\"\n"), 2, 8, "files.root: must be an absolute path, got \"srv\"");
  require_error(parse("[files]\nroot = \"/nonexistent-framed-root\"\n"), 2, 8,
                "files.root: cannot use \"/nonexistent-framed-root\": No such file or directory");
  require_error(parse("[files]\nroot = \"/etc/passwd\"\n"), 2, 8, "files.root: \"/etc/passwd\" is not a directory");
  require_error(parse("[files]\nroot = \"/srv\"\nfsync = \"yes\"\n"), 3, 9,
                "files.fsync: expected true or false, got a string");
}

TEST_CASE("commands: argv[0] must be an absolute path to an executable", "[config][errors]") {
  SECTION("argv shape") {
    require_error(parse("[commands.a]\nargv = \"/bin/true\"\n"), 2, 8,
                  "commands.a.argv: expected an array of strings, got a string");
    require_error(parse("[commands.a]\nargv = []\n"), 2, 8, "commands.a.argv: must not be empty");
    require_error(parse("[commands.a]\nargv = [\"/bin/true\", 3]\n"), 2, 22,
                  "commands.a.argv[1]: expected a string, got an integer");
    // An empty argument after argv[0] is a real, if odd, argument.
    CHECK(require_ok(parse("[commands.a]\nargv = [\"/bin/true\", \"\"]\n")).commands.at("a").argv ==
          std::vector<std::string>{"/bin/true", ""});
  }
  SECTION("argv[0]") {
    require_error(parse("[commands.a]\nargv = [\"true\"]\n"), 2, 9,
                  "commands.a.argv[0]: must be an absolute path (no PATH search), got \"true\"");
    require_error(parse("[commands.a]\nargv = [\"/nonexistent/framed-test\"]\n"), 2, 9,
                  "commands.a.argv[0]: cannot use \"/nonexistent/framed-test\": No such file or "
                  "directory");
    require_error(parse("[commands.a]\nargv = [\"/bin\"]\n"), 2, 9,
                  "commands.a.argv[0]: \"/bin\" is not a regular file");
    TempFile script("#!/bin/sh\n", 0644);
    require_error(parse("[commands.a]\nargv = [\"" + script.path() + "\"]\n"), 2, 9,
                  "is not executable");
    ::chmod(script.path().c_str(), 0755);
    CHECK(parse("[commands.a]\nargv = [\"" + script.path() + "\"]\n").errors.empty());
  }
  SECTION("names") {
    require_error(parse("[commands.\"two words\"]\nargv = [\"/bin/true\"]\n"), 1, 11,
                  "a command name may hold only letters, digits, '_', '-' and '.'");
    CHECK(require_ok(parse("[commands.Disk-usage_2]\nargv = [\"/bin/true\"]\n"))
              .commands.count("Disk-usage_2") == 1);
  }
}

TEST_CASE("every error is reported at once, in file order", "[config][errors]") {
  // [limits] comes before [daemon] here, while toml++ iterates tables by key
  // name: the order must still be the file's.
  const auto result = parse(R"([limits]
max_body = "lots"

[daemon]
workers = "many"
backlog = 5

[[listener]]
kind = "tcp"

[[listener]]
kind = "sctp"
address = "127.0.0.1:1"

[commands.a]
argv = ["relative"]
timeout = 5
)");
  INFO(all_errors(result));
  REQUIRE_FALSE(result.config.has_value());
  REQUIRE(result.errors.size() == 7);
  const auto at = [&](std::size_t i, std::uint32_t line, std::uint32_t column,
                      std::string_view part) {
    CHECK(result.errors[i].line == line);
    CHECK(result.errors[i].column == column);
    CHECK_THAT(result.errors[i].message, Catch::Contains(std::string(part)));
  };
  at(0, 2, 12, "limits.max_body: invalid size \"lots\"");
  at(1, 5, 11, "daemon.workers: expected an integer");
  at(2, 6, 1, "unknown key 'backlog' in [daemon]");
  at(3, 8, 1, "a tcp listener needs 'address'");
  at(4, 12, 8, "listener.kind: unknown value \"sctp\"");
  at(5, 16, 9, "commands.a.argv[0]: must be an absolute path");
  at(6, 17, 11, "commands.a.timeout: expected a duration string");
}

TEST_CASE("load_config: files that cannot be read", "[config][errors]") {
  SECTION("missing file: one error without a position") {
    const auto result = framed::config::load_config("/nonexistent/framed.toml");
    REQUIRE_FALSE(result.config.has_value());
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].line == 0);
    CHECK(result.errors[0].column == 0);
    CHECK(result.errors[0].to_string() ==
          "/nonexistent/framed.toml: cannot open: No such file or directory");
  }
  SECTION("a directory") {
    const auto result = framed::config::load_config("/");
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].to_string() == "/: cannot read: Is a directory");
  }
  SECTION("errors name the file as given") {
    TempFile file("[daemon]\nworkers = \"x\"\n");
    const auto result = framed::config::load_config(file.path());
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].to_string() ==
          file.path() + ":2:11: daemon.workers: expected an integer, got a string");
  }
}

TEST_CASE("ConfigError::to_string", "[config]") {
  CHECK(ConfigError{"a.toml", 3, 7, "bad"}.to_string() == "a.toml:3:7: bad");
  CHECK(ConfigError{"a.toml", 0, 0, "cannot open: x"}.to_string() == "a.toml: cannot open: x");
  CHECK(ConfigError{"", 3, 7, "bad"}.to_string() == "3:7: bad");
  CHECK(ConfigError{"", 0, 0, "bad"}.to_string() == "bad");
}

TEST_CASE("enum names round-trip", "[config]") {
  using framed::config::to_string;
  CHECK(to_string(ListenerKind::unix_stream) == "unix");
  CHECK(to_string(ListenerKind::unix_dgram) == "unix_dgram");
  CHECK(to_string(Framing::datagram) == "datagram");
  CHECK(to_string(Payload::json) == "json");
  CHECK(to_string(ByteOrder::little) == "little");
  CHECK(to_string(LogLevel::warn) == "warn");
}

// ---------------------------------------------------------------------------
// Units

TEST_CASE("sizes: integers or whole KiB/MiB/GiB strings", "[config][units]") {
  using framed::config::parse_size;
  CHECK(parse_size("0KiB").value == 0u);
  CHECK(parse_size("512KiB").value == 512u * 1024);
  CHECK(parse_size("1MiB").value == 1u << 20);
  CHECK(parse_size("4GiB").value == 4ULL << 30);
  CHECK(parse_size("17179869183GiB").value == 17179869183ULL << 30);  // 2^64 - 2^30

  // Invalid, by decision (units.hpp): every form below is refused.
  const auto refused = [&](std::string_view text, std::string_view part) {
    const auto parsed = parse_size(text);
    INFO(text);
    CHECK_FALSE(parsed.value.has_value());
    CHECK_THAT(parsed.error, Catch::Contains(std::string(part)));
  };
  refused("10", "needs a unit");  // bytes are written as an integer
  refused("1.5KiB", "fractions are not allowed");
  refused("-1KiB", "must not be negative");
  refused("+1KiB", "expected a whole number");
  refused("4GB", "expected a whole number followed by KiB, MiB or GiB");
  refused("4G", "expected a whole number");
  refused("4gib", "expected a whole number");
  refused("4 GiB", "expected a whole number");
  refused("4TiB", "expected a whole number");
  refused("GiB", "expected a whole number");
  refused("", "expected a whole number");
  refused("17179869184GiB", "too large");
  refused("99999999999999999999KiB", "too large");

  // Through the config: the integer form.
  CHECK(require_ok(parse("[limits]\nmax_body = 123\n")).limits.max_body == 123);
  CHECK(require_ok(parse("[limits]\nmax_body = \"3MiB\"\n")).limits.max_body == 3u << 20);
}

TEST_CASE("durations: a number with ms, s, m or h", "[config][units]") {
  using framed::config::parse_duration;
  using std::chrono::nanoseconds;
  CHECK(parse_duration("10ms").value == nanoseconds(10ms));
  CHECK(parse_duration("1.5s").value == nanoseconds(1500ms));
  CHECK(parse_duration("0.5ms").value == nanoseconds(500us));
  CHECK(parse_duration("5m").value == nanoseconds(300s));
  CHECK(parse_duration("1h").value == nanoseconds(3600s));
  CHECK(parse_duration("1.25h").value == nanoseconds(4500s));
  CHECK(parse_duration("0s").value == nanoseconds(0));
  CHECK(parse_duration("1.500s").value == nanoseconds(1500ms));
  CHECK(parse_duration("0.000000001s").value == nanoseconds(1));
  CHECK(parse_duration("300s").value == nanoseconds(300s));
  CHECK(parse_duration("9223372036s").value == nanoseconds(9223372036s));

  const auto refused = [&](std::string_view text, std::string_view part) {
    const auto parsed = parse_duration(text);
    INFO(text);
    CHECK_FALSE(parsed.value.has_value());
    CHECK_THAT(parsed.error, Catch::Contains(std::string(part)));
  };
  refused("10", "missing unit");
  refused("1.5", "missing unit");
  refused("-1s", "must not be negative");
  refused("10 parsecs", "expected a number followed by ms, s, m or h");
  refused("10parsecs", "expected a number followed by ms, s, m or h");
  refused("10 s", "expected a number");
  refused("10us", "expected a number");
  refused("10S", "expected a number");
  refused("1h30m", "expected a number");
  refused(".5s", "expected a number");
  refused("5.s", "expected a number");
  refused("1e3s", "expected a number");
  refused("+1s", "expected a number");
  refused("s", "expected a number");
  refused("", "expected a number");
  refused("0.0000000001s", "finer than a nanosecond");
  refused("0.0000005ms", "finer than a nanosecond");
  refused("9223372037s", "too large");
  refused("99999999999999999999999h", "too large");
}

// ---------------------------------------------------------------------------
// Addresses

TEST_CASE("addresses: numeric IPv4 or bracketed IPv6, port 0..65535", "[config][address]") {
  using framed::config::parse_address;
  const auto ok = [](std::string_view text, int family, std::string_view canonical) {
    const auto parsed = parse_address(text);
    INFO(text << ": " << parsed.error);
    REQUIRE(parsed.value.has_value());
    CHECK(parsed.value->family == family);
    CHECK(parsed.value->canonical() == canonical);
  };
  ok("127.0.0.1:9000", AF_INET, "127.0.0.1:9000");
  ok("0.0.0.0:0", AF_INET, "0.0.0.0:0");
  ok("255.255.255.255:65535", AF_INET, "255.255.255.255:65535");
  ok("[::1]:9000", AF_INET6, "[::1]:9000");
  ok("[::]:0", AF_INET6, "[::]:0");
  ok("[0:0:0:0:0:0:0:1]:09000", AF_INET6, "[::1]:9000");
  ok("[::ffff:127.0.0.1]:1", AF_INET6, "[::ffff:127.0.0.1]:1");

  const auto refused = [](std::string_view text, std::string_view part) {
    const auto parsed = parse_address(text);
    INFO(text);
    CHECK_FALSE(parsed.value.has_value());
    CHECK_THAT(parsed.error, Catch::Contains(std::string(part)));
  };
  refused("localhost:9000", "host names are not resolved");
  refused("example.com:80", "host names are not resolved");
  refused("127.1:9000", "numeric IPv4");  // inet_pton wants all four parts
  refused("127.0.0.1", "missing \":PORT\"");
  refused("127.0.0.1:", "the port must be a number from 0 to 65535");
  refused("127.0.0.1:65536", "from 0 to 65535");
  refused("127.0.0.1:-1", "from 0 to 65535");
  refused("127.0.0.1:+80", "from 0 to 65535");
  refused("127.0.0.1:80x", "from 0 to 65535");
  refused("127.0.0.1: 80", "from 0 to 65535");
  refused("::1:9000", "in brackets");
  refused("[::1]", "missing \":PORT\"");
  refused("[::1:9000", "missing ']'");
  refused("[127.0.0.1]:80", "not a numeric IPv6 address");
  refused("[fe80::1%eth0]:80", "not a numeric IPv6 address");
  refused(":9000", "missing host");
  refused("[]:9000", "missing host");
  refused(std::string_view("127.0.0.1\0:80", 13), "NUL");
}

// ---------------------------------------------------------------------------
// The operator's reference file

TEST_CASE("config/framed.toml is valid and equals the built-in defaults", "[config]") {
  const auto result = framed::config::load_config(FRAMED_REFERENCE_CONFIG);
  const Config& config = require_ok(result);
  const Config defaults = framed::config::default_config();

  CHECK(config.daemon.workers == defaults.daemon.workers);
  CHECK(config.daemon.backend == defaults.daemon.backend);
  CHECK(config.daemon.log_level == defaults.daemon.log_level);
  CHECK(config.daemon.max_connections == defaults.daemon.max_connections);
  CHECK(config.daemon.shutdown_timeout == defaults.daemon.shutdown_timeout);
  CHECK(config.limits.max_header == defaults.limits.max_header);
  CHECK(config.limits.max_body == defaults.limits.max_body);
  CHECK(config.limits.idle_timeout == defaults.limits.idle_timeout);
  CHECK(config.limits.header_timeout == defaults.limits.header_timeout);
  CHECK(config.limits.body_timeout == defaults.limits.body_timeout);
  CHECK(config.limits.min_body_rate == defaults.limits.min_body_rate);
  CHECK(config.limits.max_pending_replies == defaults.limits.max_pending_replies);
  REQUIRE(config.listeners.size() == defaults.listeners.size());
  for (std::size_t i = 0; i < defaults.listeners.size(); ++i) {
    CHECK(config.listeners[i].name == defaults.listeners[i].name);
    CHECK(config.listeners[i].kind == defaults.listeners[i].kind);
    CHECK(config.listeners[i].address == defaults.listeners[i].address);
    CHECK(config.listeners[i].framing == defaults.listeners[i].framing);
    CHECK(config.listeners[i].payload == defaults.listeners[i].payload);
  }
  CHECK_FALSE(config.files.has_value());
  CHECK(config.commands.empty());
}

TEST_CASE("config/framed.toml's commented-out examples are valid too", "[config]") {
  // Examples are written "#key = value" / "#[table]" (no space after '#'),
  // prose "# ...": enabling every example must still give a valid file.
  const std::string text = read_file(FRAMED_REFERENCE_CONFIG);
  REQUIRE_FALSE(text.empty());
  std::string enabled;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const bool example = line.size() >= 2 && line[0] == '#' &&
                         ((line[1] >= 'a' && line[1] <= 'z') || line[1] == '[');
    enabled += example ? line.substr(1) : line;
    enabled += '\n';
  }
  REQUIRE(enabled != text);
  // files.root must be an existing directory; the example's is a deployed
  // system's, so it is checked here with one that exists everywhere.
  const std::string example_root = "\"/var/lib/framed/files\"";
  const std::size_t root_at = enabled.find("root = " + example_root);
  REQUIRE(root_at != std::string::npos);
  enabled.replace(root_at + 7, example_root.size(), "\"/tmp\"");
  const auto result = parse(enabled);
  const Config& config = require_ok(result);
  CHECK(config.listeners.size() == 5);
  CHECK(config.files.has_value());
  CHECK(config.commands.size() == 2);
}

// ---------------------------------------------------------------------------
// exec: the child's world and who may run what (issue 4)

TEST_CASE("exec keys: defaults", "[config][exec]") {
  CHECK(framed::config::default_config().daemon.max_queued_jobs == 256);
  const auto result = parse(R"([commands.date]
argv = ["/bin/date"]

[[listener]]
kind = "tcp"
address = "127.0.0.1:1"
)");
  const Config& config = require_ok(result);
  const auto& date = config.commands.at("date");
  CHECK(date.env == std::map<std::string, std::string>{{"PATH", "/usr/bin:/bin"}});
  CHECK(date.cwd == "/");
  CHECK_FALSE(date.rlimit_cpu.has_value());
  CHECK_FALSE(date.rlimit_as.has_value());
  CHECK_FALSE(date.rlimit_nofile.has_value());
  CHECK(date.max_concurrent == 0);
  CHECK(date.allow_uids.empty());
  CHECK(date.allow_gids.empty());
  CHECK_FALSE(config.listeners.at(0).allow_commands.has_value());
}

TEST_CASE("exec keys: values", "[config][exec]") {
  const auto result = parse(R"([daemon]
max_queued_jobs = 0

[[listener]]
kind = "unix"
path = "/tmp/framed-test.sock"
allow_commands = ["date"]

[[listener]]
kind = "tcp"
address = "127.0.0.1:1"
allow_commands = []

[commands.date]
argv = ["/bin/date"]
env = { LANG = "C.UTF-8", EMPTY = "" }
cwd = "/tmp"
rlimit_cpu = "1.5s"
rlimit_as = "256MiB"
rlimit_nofile = 64
max_concurrent = 2
allow_uids = [0, 1000]
allow_gids = [4294967294]
)");
  const Config& config = require_ok(result);
  CHECK(config.daemon.max_queued_jobs == 0);
  REQUIRE(config.listeners.size() == 2);
  CHECK(config.listeners[0].allow_commands == std::vector<std::string>{"date"});
  CHECK(config.listeners[1].allow_commands == std::vector<std::string>{});
  const auto& date = config.commands.at("date");
  // The environment is exactly what is written: no PATH unless given.
  CHECK(date.env == std::map<std::string, std::string>{{"EMPTY", ""}, {"LANG", "C.UTF-8"}});
  CHECK(date.cwd == "/tmp");
  CHECK(date.rlimit_cpu == 2U);  // whole seconds, rounded up
  CHECK(date.rlimit_as == (256ULL << 20));
  CHECK(date.rlimit_nofile == 64U);
  CHECK(date.max_concurrent == 2);
  CHECK(date.allow_uids == std::vector<std::uint32_t>{0, 1000});
  CHECK(date.allow_gids == std::vector<std::uint32_t>{4294967294U});
}

TEST_CASE("exec keys: errors", "[config][errors][exec]") {
  const std::string head = "[commands.a]\nargv = [\"/bin/true\"]\n";
  require_error(parse("[daemon]\nmax_queued_jobs = -1\n"), 2, 19,
                "daemon.max_queued_jobs: must be from 0 to 1048576, got -1");
  require_error(parse(head + "env = \"PATH=/bin\"\n"), 3, 7,
                "commands.a.env: expected a table of strings");
  require_error(parse(head + "env = { PATH = 1 }\n"), 3, 16,
                "commands.a.env.PATH: expected a string, got an integer");
  require_error(parse(head + "env = { \"A=B\" = \"x\" }\n"), 3, 9,
                "commands.a.env.A=B: a variable name may not contain '=' or NUL");
  require_error(parse(head + "cwd = \"tmp\"\n"), 3, 7,
                "commands.a.cwd: must be an absolute path, got \"tmp\"");
  require_error(parse(head + "cwd = \"/nonexistent/framed\"\n"), 3, 7,
                "commands.a.cwd: cannot use \"/nonexistent/framed\": No such file or directory");
  require_error(parse(head + "cwd = \"/bin/true\"\n"), 3, 7,
                "commands.a.cwd: \"/bin/true\" is not a directory");
  require_error(parse(head + "rlimit_cpu = \"500ms\"\n"), 3, 14,
                "commands.a.rlimit_cpu: must be at least 1s");
  require_error(parse(head + "rlimit_cpu = 5\n"), 3, 14,
                "commands.a.rlimit_cpu: expected a duration string");
  require_error(parse(head + "rlimit_as = \"1MiB\"\n"), 3, 13,
                "commands.a.rlimit_as: must be at least 16777216 bytes");
  require_error(parse(head + "rlimit_nofile = 2\n"), 3, 17,
                "commands.a.rlimit_nofile: must be from 3 to 1048576, got 2");
  require_error(parse(head + "max_concurrent = 0\n"), 3, 18,
                "commands.a.max_concurrent: must be from 1 to 4294967295, got 0");
  require_error(parse(head + "allow_uids = 1000\n"), 3, 14,
                "commands.a.allow_uids: expected an array of numeric ids");
  require_error(parse(head + "allow_uids = []\n"), 3, 14,
                "commands.a.allow_uids: must not be empty");
  require_error(parse(head + "allow_gids = [0, \"wheel\"]\n"), 3, 18,
                "commands.a.allow_gids[1]: expected an integer, got a string");
  require_error(parse(head + "allow_uids = [4294967295]\n"), 3, 15,
                "commands.a.allow_uids[0]: must be from 0 to 4294967294");
  require_error(parse(head + "max_concurent = 2\n"), 3, 1,
                "unknown key 'max_concurent' in [commands.a]; did you mean 'max_concurrent'?");
}

TEST_CASE("listener.allow_commands names configured commands", "[config][errors][exec]") {
  const std::string listener = "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n";
  // Checked against [commands] even when that comes later in the file.
  require_error(parse(listener + "allow_commands = [\"date\", \"nope\"]\n[commands.date]\nargv = [\"/bin/date\"]\n"),
                4, 27, "listener.allow_commands: no [commands.nope] is configured");
  require_error(parse(listener + "allow_commands = [\"x\"]\n"), 4, 19,
                "listener.allow_commands: no [commands.x] is configured");
  require_error(parse(listener + "allow_commands = \"date\"\n"), 4, 18,
                "listener.allow_commands: expected an array of command names");
  require_error(parse(listener + "allow_commands = [1]\n"), 4, 19,
                "listener.allow_commands[0]: expected a string, got an integer");
}

// ---------------------------------------------------------------------------
// The table of keys (config/schema.hpp)

namespace {

// CONFIG.md-style dotted key of every key in a parsed file: "daemon.workers",
// "listener.kind", "commands.*.argv" (a command's env is one key, not a tree).
void collect_keys(const toml::table& root, std::set<std::string>& out) {
  const auto add_keys = [&](const toml::node& table, const std::string& prefix) {
    for (const auto& entry : *table.as_table()) out.insert(prefix + std::string(entry.first.str()));
  };
  for (const auto& [section, value] : root) {
    const std::string name(section.str());
    if (const auto* listeners = value.as_array()) {
      for (const auto& element : *listeners) add_keys(element, "listener.");
    } else if (name == "commands" || name == "principals") {
      for (const auto& entry : *value.as_table()) add_keys(entry.second, name + ".*.");
    } else {
      add_keys(value, name + ".");
    }
  }
}

// framed.toml with every example enabled (see the test above for the convention).
std::string reference_with_examples() {
  std::string enabled;
  std::istringstream lines(read_file(FRAMED_REFERENCE_CONFIG));
  for (std::string line; std::getline(lines, line);) {
    const bool example = line.size() >= 2 && line[0] == '#' &&
                         ((line[1] >= 'a' && line[1] <= 'z') || line[1] == '[');
    enabled += example ? line.substr(1) : line;
    enabled += '\n';
  }
  return enabled;
}

// The text of framed.toml between the banner "###...### TITLE ###...###" and
// the next banner.
std::string reference_section(std::string_view title) {
  const std::string text = read_file(FRAMED_REFERENCE_CONFIG);
  std::string banner(1, ' ');
  banner.append(title).append(1, ' ');
  const std::size_t start = text.find(banner);
  if (start == std::string::npos) return {};
  const std::size_t end = text.find("\n####", start);
  return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

bool has_word(std::string_view text, std::string_view word) {
  const auto is_word_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
  };
  for (auto at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
    const bool starts = at == 0 || !is_word_char(text[at - 1]);
    const bool ends = at + word.size() == text.size() || !is_word_char(text[at + word.size()]);
    if (starts && ends) return true;
  }
  return false;
}

// A file whose last line is `KEY = VALUE` for the spec's key, inside the
// smallest table that is otherwise valid; and the label errors give the key.
struct KeyProbe {
  std::string head;
  std::string label;
};

KeyProbe probe_for(const std::string& dotted_key) {
  const std::size_t dot = dotted_key.rfind('.');
  const std::string section = dotted_key.substr(0, dot);
  const std::string leaf = dotted_key.substr(dot + 1);
  if (section == "daemon") return {"[daemon]\n", dotted_key};
  if (section == "limits") return {"[limits]\n", dotted_key};
  if (section == "files") return {"[files]\nroot = \"/srv\"\n", dotted_key};
  if (section == "pubsub") return {"[pubsub]\n", dotted_key};
  if (section == "listener") {
    return {"[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n", dotted_key};
  }
  if (section == "principals.*") return {"[principals.a]\nunix_uids = [0]\n", "principals.a." + leaf};
  return {"[commands.a]\nargv = [\"/bin/true\"]\n", "commands.a." + leaf};
}

}  // namespace

TEST_CASE("every row is documented in config/framed.toml, every key there has a row",
          "[config][schema]") {
  const auto keys = framed::config::config_keys();
  std::set<std::string> rows;
  for (const auto& spec : keys) {
    INFO(spec.dotted_key);
    CHECK(rows.insert(spec.dotted_key).second);  // one row per key
  }

  std::set<std::string> in_file;
  collect_keys(toml::parse(reference_with_examples()), in_file);
  REQUIRE(in_file.size() > 20);
  for (const auto& key : in_file) {
    INFO(key << " is in framed.toml but has no row");
    CHECK(rows.count(key) == 1);
  }

  const std::map<std::string, std::string> sections{{"daemon", "DAEMON"},
                                                    {"limits", "LIMITS"},
                                                    {"listener", "LISTENERS"},
                                                    {"files", "FILES"},
                                                    {"commands", "COMMANDS"},
                                                    {"principals", "PRINCIPALS"},
                                                    {"pubsub", "PUBSUB"}};
  for (const auto& spec : keys) {
    const std::string& key = spec.dotted_key;
    const std::string table = key.substr(0, key.find('.'));
    const std::string leaf = key.substr(key.rfind('.') + 1);
    REQUIRE(sections.count(table) == 1);
    const std::string section = reference_section(sections.at(table));
    INFO(key << " is not documented in the " << sections.at(table) << " section of framed.toml");
    CHECK((in_file.count(key) == 1 || has_word(section, leaf)));
  }
}

TEST_CASE("integer and size rows are enforced at their bounds and one past them",
          "[config][schema]") {
  using framed::config::ValueType;
  constexpr auto kLargestTomlInteger = static_cast<std::uint64_t>(INT64_MAX);
  int probed = 0;
  for (const auto& spec : framed::config::config_keys()) {
    if (spec.type != ValueType::integer && spec.type != ValueType::size) continue;
    const auto [head, label] = probe_for(spec.dotted_key);
    const std::string leaf = spec.dotted_key.substr(spec.dotted_key.rfind('.') + 1);
    const auto line = static_cast<std::uint32_t>(std::count(head.begin(), head.end(), '\n') + 1);
    const auto column = static_cast<std::uint32_t>(leaf.size() + 4);
    const auto with = [&](const std::string& value) {
      return parse(head + leaf + " = " + value + "\n");
    };
    INFO(spec.dotted_key << " in [" << spec.min << ", " << spec.max << "]");

    require_ok(with(std::to_string(spec.min)));
    const std::string below = spec.min == 0 ? "-1" : std::to_string(spec.min - 1);
    require_error(with(below), line, column, label + ": must");
    if (spec.max <= kLargestTomlInteger) {
      require_ok(with(std::to_string(spec.max)));
    }
    if (spec.max < kLargestTomlInteger) {
      require_error(with(std::to_string(spec.max + 1)), line, column, label + ": must");
    }
    ++probed;
  }
  // daemon 4, limits 5, listener 6, files 2, commands 4.
  CHECK(probed == 25);
}

TEST_CASE("duration rows: zero where it means something, and nowhere else", "[config][schema]") {
  CHECK(require_ok(parse("[daemon]\nshutdown_timeout = \"0s\"\n")).daemon.shutdown_timeout == 0s);
  require_error(parse("[limits]\nheader_timeout = \"0s\"\n"), 2, 18,
                "limits.header_timeout: must be greater than zero");
  // The smallest duration is one nanosecond.
  CHECK(require_ok(parse("[limits]\nheader_timeout = \"0.000001ms\"\n")).limits.header_timeout ==
        1ns);
  CHECK(require_ok(parse("[commands.a]\nargv = [\"/bin/true\"]\nrlimit_cpu = \"1s\"\n"))
            .commands.at("a")
            .rlimit_cpu == 1U);
  require_error(parse("[commands.a]\nargv = [\"/bin/true\"]\nrlimit_cpu = \"999ms\"\n"), 3, 14,
                "commands.a.rlimit_cpu: must be at least 1s");
}

TEST_CASE("body_timeout and min_body_rate: defaults, units, per-listener overrides", "[config]") {
  const Config defaults = framed::config::default_config();
  CHECK(defaults.limits.body_timeout == 10s);
  CHECK(defaults.limits.min_body_rate == 1024);
  const auto result = parse(R"([limits]
body_timeout = "2.5s"
min_body_rate = "64KiB"

[[listener]]
kind = "tcp"
address = "127.0.0.1:9000"

[[listener]]
kind = "unix"
path = "/tmp/framed-body.sock"
body_timeout = "1s"
min_body_rate = 0
)");
  const Config& config = require_ok(result);
  CHECK(config.limits.body_timeout == 2500ms);
  CHECK(config.limits.min_body_rate == 64 * 1024);
  REQUIRE(config.listeners.size() == 2);
  CHECK(config.listeners[0].limits.body_timeout == 2500ms);
  CHECK(config.listeners[0].limits.min_body_rate == 64 * 1024);
  CHECK(config.listeners[1].limits.body_timeout == 1s);
  CHECK(config.listeners[1].limits.min_body_rate == 0);

  require_error(parse("[limits]\nbody_timeout = \"0s\"\n"), 2, 16, "limits.body_timeout: must be greater than zero");
  require_error(parse("[limits]\nbody_timeout = 10\n"), 2, 16, "limits.body_timeout");
  require_error(parse("[limits]\nmin_body_rate = \"fast\"\n"), 2, 17, "limits.min_body_rate");
  require_error(parse("[limits]\nmin_body_rate = -1\n"), 2, 17, "limits.min_body_rate: must");
  // An http listener has no frame bodies: the keys are not its.
  require_error(parse("[[listener]]\nkind = \"http\"\naddress = \"127.0.0.1:1\"\nbody_timeout = \"1s\"\n"), 4, 1,
                "body_timeout");
}

TEST_CASE("resume_window and max_partials: defaults, zero, bounds", "[config]") {
  const auto keep_none = parse("[files]\nroot = \"/tmp\"\nresume_window = \"0s\"\nmax_partials = 0\n");
  const Config& none = require_ok(keep_none);
  REQUIRE(none.files.has_value());
  CHECK(none.files->resume_window == 0s);
  CHECK(none.files->max_partials == 0);
  const auto short_window = parse("[files]\nroot = \"/tmp\"\nresume_window = \"1.5s\"\nmax_partials = 4096\n");
  CHECK(require_ok(short_window).files->resume_window == 1500ms);
  CHECK(require_ok(short_window).files->max_partials == 4096);
  require_error(parse("[files]\nroot = \"/tmp\"\nmax_partials = 4097\n"), 3, 16, "files.max_partials: must");
  require_error(parse("[files]\nroot = \"/tmp\"\nresume_window = \"-1s\"\n"), 3, 17, "files.resume_window");
  require_error(parse("[files]\nroot = \"/tmp\"\nresume_window = 600\n"), 3, 17, "files.resume_window");
}

TEST_CASE("which keys a reload may change", "[config][schema]") {
  using framed::config::key_is_reloadable;
  // The reactor backend is chosen once, at start (CONFIG.md).
  CHECK_FALSE(key_is_reloadable("daemon.backend"));
  // So is the way commands are contained: the daemon cannot stop being a
  // subreaper with orphans already handed to it.
  CHECK_FALSE(key_is_reloadable("daemon.exec_containment"));
  CHECK_FALSE(key_is_reloadable("pubsub.bridge"));
  CHECK_FALSE(key_is_reloadable("pubsub.bridge_prefix"));
  CHECK(key_is_reloadable("daemon.workers"));
  CHECK(key_is_reloadable("daemon.log_level"));
  CHECK(key_is_reloadable("daemon.max_connections"));
  CHECK(key_is_reloadable("daemon.shutdown_timeout"));
  CHECK(key_is_reloadable("daemon.max_queued_jobs"));
  CHECK(key_is_reloadable("limits.max_body"));
  CHECK(key_is_reloadable("listener.address"));
  CHECK(key_is_reloadable("listener.idle_timeout"));
  CHECK(key_is_reloadable("files.root"));
  CHECK(key_is_reloadable("commands.date.argv"));
  CHECK(key_is_reloadable("commands.*.timeout"));
  // Threads and their sockets are made at start.
  CHECK_FALSE(key_is_reloadable("daemon.reactors"));
  CHECK_FALSE(key_is_reloadable("daemon.pin_reactors"));
  // Not keys at all.
  CHECK_FALSE(key_is_reloadable("commands.date"));
  CHECK_FALSE(key_is_reloadable("workers"));

  for (const auto& spec : framed::config::config_keys()) {
    INFO(spec.dotted_key);
    const bool restart_only = spec.dotted_key == "daemon.backend" || spec.dotted_key == "daemon.exec_containment" ||
                              spec.dotted_key == "daemon.reactors" || spec.dotted_key == "daemon.pin_reactors" ||
                              spec.dotted_key.starts_with("pubsub.");
    CHECK(spec.reloadable == !restart_only);
    CHECK(key_is_reloadable(spec.dotted_key) == spec.reloadable);
  }
}

TEST_CASE("daemon.reactors: a count of threads, 0 for one per CPU", "[config][errors]") {
  CHECK(require_ok(parse("")).daemon.reactors == 1);
  CHECK_FALSE(require_ok(parse("")).daemon.pin_reactors);
  CHECK(require_ok(parse("[daemon]\nreactors = 0\n")).daemon.reactors == 0);
  CHECK(require_ok(parse("[daemon]\nreactors = 4\npin_reactors = true\n")).daemon.reactors == 4);
  CHECK(require_ok(parse("[daemon]\nreactors = 1024\n")).daemon.reactors == 1024);
  require_error(parse("[daemon]\nreactors = 1025\n"), 2, 12, "daemon.reactors");
  require_error(parse("[daemon]\nreactors = -1\n"), 2, 12, "daemon.reactors");
  require_error(parse("[daemon]\nreactors = \"2\"\n"), 2, 12, "daemon.reactors");
  require_error(parse("[daemon]\npin_reactors = 1\n"), 2, 16, "daemon.pin_reactors");
}

TEST_CASE("tls keys: pairs, kinds and files", "[config][errors]") {
  const std::string tcp = "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n";
  require_error(parse(tcp + "tls_cert = \"/etc/x.pem\"\n"), 4, 1, "listener.tls_cert: needs tls_key");
  require_error(parse(tcp + "tls_key = \"/etc/x.key\"\n"), 4, 1, "listener.tls_key: needs tls_cert");
  require_error(parse(tcp + "tls_client_ca = \"/etc/ca.pem\"\n"), 4, 1, "listener.tls_client_ca: needs tls_cert");
  require_error(parse(tcp + "tls_cert = \"x.pem\"\ntls_key = \"/etc/x.key\"\n"), 4, 12,
                "listener.tls_cert: must be an absolute path");
  require_error(parse(tcp + "tls_cert = \"/nonexistent/x.pem\"\ntls_key = \"/nonexistent/x.key\"\n"), 4, 12,
                "cannot load the certificate chain \"/nonexistent/x.pem\"");
  require_error(parse("[[listener]]\nkind = \"unix\"\npath = \"/tmp/x.sock\"\ntls_cert = \"/a.pem\"\n"), 4, 1, "listener.tls_cert: TLS applies only to tcp listeners, not unix");
}

TEST_CASE("duplicate keys and tables are syntax errors with a position", "[config][errors]") {
  const auto at_line = [](const LoadResult& result, std::uint32_t line, std::string_view part) {
    INFO(all_errors(result));
    REQUIRE_FALSE(result.config.has_value());
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].line == line);
    CHECK(result.errors[0].column >= 1);
    CHECK_THAT(result.errors[0].message, Catch::Contains(std::string(part)));
  };
  at_line(parse("[daemon]\nworkers = 1\nworkers = 2\n"), 3, "workers");
  at_line(parse("[daemon]\nworkers = 1\n\n[daemon]\nlog_level = \"info\"\n"), 4, "daemon");
  at_line(parse("[commands.a]\nargv = [\"/bin/true\"]\n[commands.a]\ntimeout = \"1s\"\n"), 3,
          "a");
  at_line(parse("[commands.a]\nargv = [\"/bin/true\"]\nenv = { A = \"1\", A = \"2\" }\n"), 3, "A");
  at_line(parse("[[listener]]\nkind = \"tcp\"\nkind = \"udp\"\n"), 3, "kind");
}

TEST_CASE("a listener's wire format is its framing, payload and byte order", "[config]") {
  const auto result = parse(R"([[listener]]
kind = "udp"
address = "127.0.0.1:1"
payload = "json"
byte_order = "little"
)");
  const Config& config = require_ok(result);
  const framed::codec::WireFormat wire = config.listeners.at(0).wire_format();
  CHECK(wire == framed::codec::WireFormat{Framing::datagram, Payload::json, ByteOrder::little});
  CHECK(wire.json_frames());
  const auto defaults = framed::config::default_config();
  CHECK(defaults.listeners.at(0).wire_format() == framed::codec::WireFormat{});
  CHECK(defaults.listeners.at(1).wire_format().simple_mode());
}

TEST_CASE("raw framing: stream kinds only, replies framed by reply_framing", "[config][listener]") {
  const std::string tcp = "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n";
  SECTION("defaults: raw replies") {
    const auto loaded = parse(tcp + "framing = \"raw\"\ncommand = \"upper\"\n");
    REQUIRE(loaded.errors.empty());
    const auto wire = loaded.config->listeners.at(0).wire_format();
    CHECK(wire.framing == framed::codec::Framing::raw);
    CHECK(wire.reply_framing == framed::codec::ReplyFraming::raw);
    CHECK(wire.simple_mode());
    CHECK_FALSE(wire.json_replies());
  }
  SECTION("length replies in little-endian, as struct.pack('i') clients read them") {
    const auto loaded = parse(tcp + "framing = \"raw\"\nreply_framing = \"length\"\nbyte_order = \"little\"\n");
    REQUIRE(loaded.errors.empty());
    const auto wire = loaded.config->listeners.at(0).wire_format();
    CHECK(wire.length_prefixed_replies());
    CHECK(wire.byte_order == framed::codec::ByteOrder::little);
  }
  SECTION("json replies to simple-mode requests") {
    const auto loaded = parse(tcp + "framing = \"raw\"\nreply_framing = \"json\"\n");
    REQUIRE(loaded.errors.empty());
    const auto wire = loaded.config->listeners.at(0).wire_format();
    CHECK(wire.json_replies());
    CHECK(wire.simple_mode());
  }
  SECTION("errors") {
    require_error(parse(tcp + "framing = \"json\"\nreply_framing = \"length\"\n"), 5, 1,
                  "listener.reply_framing: applies only to \"raw\" framing");
    require_error(parse(tcp + "framing = \"raw\"\nbyte_order = \"little\"\n"), 5, 1,
                  "listener.byte_order: has no effect with \"raw\" framing and reply_framing = \"raw\"");
    require_error(parse(tcp + "framing = \"raw\"\nreply_framing = \"lines\"\n"), 5, 17,
                  "listener.reply_framing: unknown value \"lines\"");
    require_error(parse("[[listener]]\nkind = \"udp\"\naddress = \"127.0.0.1:1\"\nframing = \"raw\"\n"), 4, 11,
                  "a udp listener's framing must be \"datagram\", got \"raw\"");
  }
}

TEST_CASE("an http listener takes address, name, backlog and its head limits, no framing", "[config]") {
  const auto good = parse(R"([[listener]]
kind = "http"
name = "web"
address = "127.0.0.1:9100"
backlog = 64
max_header = 8192
idle_timeout = "30s"
header_timeout = "5s"
)");
  const Config& config = require_ok(good);
  REQUIRE(config.listeners.size() == 1);
  CHECK(config.listeners[0].kind == ListenerKind::http);
  CHECK(config.listeners[0].limits.max_header == 8192);

  const auto unnamed = parse("[[listener]]\nkind = \"http\"\naddress = \"127.0.0.1:9100\"\n");
  CHECK(require_ok(unnamed).listeners[0].name == "http:127.0.0.1:9100");

  const auto bad = parse(R"([[listener]]
kind = "http"
address = "127.0.0.1:9100"
framing = "line"
command = "echo"
max_body = 10
path = "/tmp/x"
)");
  const std::string errors = all_errors(bad);
  CHECK(errors.find("listener.framing: an http listener speaks HTTP") != std::string::npos);
  CHECK(errors.find("listener.command: an http listener") != std::string::npos);
  CHECK(errors.find("listener.max_body: an http listener") != std::string::npos);
  CHECK(errors.find("listener.path: a http listener takes 'address'") != std::string::npos);
  CHECK(bad.errors.size() == 4);  // one each, none repeated by the framing rules

  const auto clash = parse(R"([[listener]]
kind = "tcp"
address = "127.0.0.1:9100"
[[listener]]
kind = "http"
address = "127.0.0.1:9100"
)");
  CHECK(all_errors(clash).find("is already used") != std::string::npos);
}

TEST_CASE("principals: credentials, permissions and the listeners that need them", "[config][principals]") {
  const std::string hash(64, 'a');
  const std::string token_listener =
      "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nauth = \"token\"\n";

  SECTION("a complete principal") {
    const LoadResult result = parse(token_listener + "[principals.deploy]\ntoken_sha256 = \"" +
                                            std::string(64, 'A') + "\"\nallow_commands = [\"date\"]\n"
                                            "files = \"write\"\nchannels = [\"builds.*\"]\nrate = 100\n"
                                            "unix_uids = [1000]\n"
                                            "[commands.date]\nargv = [\"/bin/date\"]\n");
    const Config& config = require_ok(result);
    const auto& deploy = config.principals.at("deploy");
    CHECK(deploy.token_sha256.value_or("") == hash);  // hex is read in either case, kept lowercase
    CHECK(deploy.files == framed::config::FileAccess::write);
    CHECK(deploy.channels == std::vector<std::string>{"builds.*"});
    CHECK(deploy.rate == 100);
    CHECK(deploy.unix_uids == std::vector<std::uint32_t>{1000});
    CHECK(config.listeners.front().auth == framed::config::ListenerAuth::token);
  }
  SECTION("defaults: no files, no channels, no rate; the listener's commands") {
    const LoadResult result = parse("[principals.ops]\nunix_uids = [0]\n");
    const Config& config = require_ok(result);
    const auto& ops = config.principals.at("ops");
    CHECK(ops.files == framed::config::FileAccess::none);
    CHECK(ops.channels.empty());
    CHECK(ops.rate == 0);
    CHECK_FALSE(ops.allow_commands.has_value());
  }
  SECTION("errors") {
    require_error(parse(token_listener), 4, 8, "\"token\" needs a [principals.NAME] with token_sha256");
    require_error(parse("[principals.a]\ntoken_sha256 = \"abc\"\n"), 2, 16, "64 hex digits");
    require_error(parse("[principals.a]\nfiles = \"read\"\n"), 1, 1, "no client could ever be this principal");
    require_error(parse("[principals.a]\nunix_uids = [1]\nfiles = \"all\"\n"), 3, 9, "unknown value \"all\"");
    require_error(parse("[principals.a]\nunix_uids = [1]\nallow_commands = [\"nope\"]\n"), 3, 19,
                  "principals.a.allow_commands: no [commands.nope] is configured");
    require_error(parse("[principals.a]\nunix_uids = [7]\n[principals.b]\nunix_uids = [7]\n"), 4, 13,
                  "uid 7 is already principal \"a\"'s");
    require_error(parse("[principals.a]\ntoken_sha256 = \"" + hash + "\"\n[principals.b]\ntoken_sha256 = \"" +
                        hash + "\"\n"),
                  4, 16, "this token is already principal \"a\"'s");
    require_error(parse("[principals.\"a b\"]\nunix_uids = [1]\n"), 1, 13, "a principal name may hold only");
    require_error(parse("[[listener]]\nkind = \"udp\"\naddress = \"127.0.0.1:1\"\nauth = \"token\"\n"
                        "[principals.a]\ntoken_sha256 = \"" + hash + "\"\n"),
                  4, 1, "auth applies to tcp and unix");
    require_error(parse("[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nauth = \"certificate\"\n"
                        "[principals.a]\ncertificate_subject = \"CN=a\"\n"),
                  4, 8, "\"certificate\" needs TLS with client certificates");
    require_error(parse("[[listener]]\nkind = \"unix\"\npath = \"/tmp/x.sock\"\nmax_connections_per_ip = 5\n"), 4, 1,
                  "it applies to tcp and http");
  }
}
