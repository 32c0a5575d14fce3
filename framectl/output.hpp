#pragma once
// What framectl writes: bytes to stdout/stderr (whole, retried on short
// writes), JSON bodies pretty-printed for people, and the --json form of a
// reply (framectl.1, JSON OUTPUT): the daemon's header object with the body
// added as a member.

#include <simdjson.h>

#include <string>
#include <string_view>

#include "reply_head.hpp"

namespace framed::framectl {

// Writes all of `bytes` to `fd`; a local_file Failure if it cannot.
void write_all(int fd, std::string_view bytes, std::string_view what);
inline void write_stdout(std::string_view bytes) { write_all(1, bytes, "stdout"); }
inline void write_stderr(std::string_view bytes) { write_all(2, bytes, "stderr"); }

// A JSON value indented by two spaces per level, members in the daemon's order.
std::string pretty_json(simdjson::dom::element value);

// RFC 4648 base64 (with padding).
std::string base64(std::string_view bytes);

// Appends ,"key":"text" when `bytes` are valid UTF-8, else
// ,"key_base64":"…" (JSON strings hold text only).
void append_bytes_member(std::string& members, std::string_view key, std::string_view bytes);

// The header object as the daemon sent it, with `members` (",\"k\":v"
// pieces) added before its closing brace, and a newline: one line.
std::string json_line(const ReplyHead& head, std::string_view members = {});

}  // namespace framed::framectl
