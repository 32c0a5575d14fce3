#pragma once
// A request as a value, from either a json header (full fidelity) or a simple
// payload "COMMAND[ SPACE ARGUMENT-BYTES]" (PROTOCOL.md section 2).
//
// Lifetime: every string_view points into the parser's string buffer or into
// the connection's input buffer, so a Request is valid only until the next
// header is parsed or its frame is consumed. Whatever must outlive that (a job
// for the worker pool) is copied out by the command.

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace framed::proto {

enum class RequestMode : std::uint8_t { json, simple };

struct Request {
  RequestMode mode = RequestMode::json;
  std::string_view command;
  std::string id_json;  // the id as JSON text, to copy into the reply; empty: none
  std::vector<std::string_view> args;
  std::string_view body;
  simdjson::dom::object header;  // json mode: the whole header, for command fields

  void reset() {
    command = {};
    id_json.clear();
    args.clear();
    body = {};
    header = {};
  }
};

// Fills `out` from a parsed json header (already known to be an object with a
// valid total_size). Returns the bad_request message when `cmd` is missing or
// not a string, `id` is neither an integer nor a string, or `args` is not an
// array of strings; `out.id_json` is set whenever the id itself was valid, so
// even the error reply carries it.
std::optional<std::string> parse_json_request(simdjson::dom::object header, std::string_view body, Request& out);

// Fills `out` from a simple-mode payload. With forced_command (a listener's
// `command = NAME`) the whole payload is that command's body.
void parse_simple_request(std::string_view payload, std::optional<std::string_view> forced_command,
                          Request& out);

// Splits simple-mode argument bytes on spaces (empty pieces dropped), for
// commands that take words: `exec NAME ARG...`.
void split_words(std::string_view text, std::vector<std::string_view>& out);

}  // namespace framed::proto
