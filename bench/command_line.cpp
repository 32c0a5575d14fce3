#include "command_line.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace framed::bench {
namespace {

constexpr std::string_view kServerOptions[] = {"--host", "--port", "--unix", "--protocol", "--byte-order"};

bool is_server_option(std::string_view name) {
  return std::find(std::begin(kServerOptions), std::end(kServerOptions), name) != std::end(kServerOptions);
}

Verdict parse_server_option(std::string_view name, std::string_view value, ServerOptions& server) {
  if (name == "--host") {
    if (value.empty()) return "a host";
    server.host = value;
  } else if (name == "--port") {
    if (!parse_integer<std::uint16_t>(value, 1, 65535, server.port)) return "a port (1-65535)";
  } else if (name == "--unix") {
    if (value.empty() || value == "@") return "a socket path";
    server.unix_path = value;
  } else if (name == "--protocol") {
    return parse_choice(value, {{"json", Protocol::json}, {"resp", Protocol::resp}, {"echo", Protocol::echo}},
                        server.protocol, "json, resp or echo");
  } else if (name == "--byte-order") {
    return parse_choice(value, {{"big", ByteOrder::big}, {"little", ByteOrder::little}}, server.byte_order,
                        "big or little");
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(Protocol protocol) {
  switch (protocol) {
    case Protocol::json:
      return "json";
    case Protocol::resp:
      return "resp";
    case Protocol::echo:
      return "echo";
  }
  return "?";
}
std::string_view to_string(ByteOrder order) { return order == ByteOrder::big ? "big" : "little"; }

bool parse_seconds(std::string_view text, double min, double max, double& out) {
  // strtod needs a terminated string; from_chars for double would do, but
  // strtod also accepts the "1e-1" forms people type.
  const std::string copy(text);
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (copy.empty() || end != copy.c_str() + copy.size() || !std::isfinite(value)) return false;
  if (value < min || value > max) return false;
  out = value;
  return true;
}

Verdict parse_count(std::string_view value, unsigned max, unsigned& out, std::string_view what) {
  if (parse_integer(value, 1U, max, out)) return std::nullopt;
  std::string verdict(what);
  verdict.append(" (1-").append(std::to_string(max)).append(")");
  return verdict;
}

CommandLine walk_command_line(int argc, char** argv, std::initializer_list<std::string_view> valued,
                              ServerOptions& server, const OptionHandler& handle,
                              std::initializer_list<std::string_view> flags) {
  CommandLine result;
  auto fail = [&result](std::string message) {
    result.error = std::move(message);
    return result;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    std::string_view name = arg;
    std::optional<std::string_view> inline_value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    if (name == "--help" || name == "-h") {
      result.help = true;
      return result;
    }
    if (name == "--json") {
      if (inline_value) return fail("--json takes no value");
      server.json_output = true;
      continue;
    }
    if (std::find(flags.begin(), flags.end(), name) != flags.end()) {
      if (inline_value) return fail(std::string(name) + " takes no value");
      if (const Verdict verdict = handle(name, {})) return fail(std::string(name) + ": " + *verdict);
      continue;
    }
    const bool server_option = is_server_option(name);
    if (!server_option && std::find(valued.begin(), valued.end(), name) == valued.end()) {
      return fail(std::string("unknown option ").append(arg));
    }
    std::string_view value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return fail(std::string(name) + " needs a value");
    }
    const Verdict verdict = server_option ? parse_server_option(name, value, server) : handle(name, value);
    if (verdict) return fail(std::string(name) + ": '" + std::string(value) + "' is not " + *verdict);
  }
  return result;
}

std::optional<int> finish_command_line(std::string_view program, const CommandLine& parsed, const std::string& usage) {
  if (parsed.help) {
    std::fputs(usage.c_str(), stdout);
    return kExitOk;
  }
  if (!parsed.error.empty()) {
    const std::string name(program);
    std::fprintf(stderr, "%s: %s\n(see %s --help)\n", name.c_str(), parsed.error.c_str(), name.c_str());
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace framed::bench
