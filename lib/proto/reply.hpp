#pragma once
// A reply as a value: what a command answers, before a framing encodes it.
// One Reply is reused for every request of a connection, so in the steady
// state building a reply allocates nothing.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proto/body_source.hpp"
#include "proto/error_code.hpp"
#include "proto/json_writer.hpp"

namespace framed::proto {

struct Reply {
  std::string id_json;  // copied from the request; empty: no id
  bool ok = true;
  ErrorCode error_code = ErrorCode::internal;
  std::string error_message;  // never empty when !ok
  // Extra header members, already rendered as `,"key":value` pieces.
  std::string fields;
  // The body. Views either the request's own bytes (echo) or body_storage.
  std::string_view body;
  std::string body_storage;
  // Instead of `body`: a body produced in pieces while it is sent (stream
  // framings; a datagram reads it whole, up to the datagram limit).
  std::unique_ptr<BodySource> body_source;

  void reset() {
    id_json.clear();
    ok = true;
    error_message.clear();
    fields.clear();
    body = {};
    body_storage.clear();
    body_source.reset();
  }

  void fail(ErrorCode code, std::string_view message) {
    ok = false;
    error_code = code;
    error_message.assign(message);
    body = {};
    body_source.reset();
  }

  // Sets the body to what the command wrote into body_storage.
  void use_storage_as_body() { body = body_storage; }

  void add_field(std::string_view key, bool value) {
    begin_field(key);
    fields.append(value ? "true" : "false");
  }
  void add_field(std::string_view key, std::uint64_t value) {
    begin_field(key);
    append_json_uint(fields, value);
  }
  void add_field(std::string_view key, std::int64_t value) {
    begin_field(key);
    append_json_int(fields, value);
  }
  void add_field(std::string_view key, std::string_view value) {
    begin_field(key);
    append_json_string(fields, value);
  }
  // Without this, a string literal would convert to bool, not string_view.
  void add_field(std::string_view key, const char* value) { add_field(key, std::string_view(value)); }

 private:
  void begin_field(std::string_view key) {
    fields.append(",\"");
    fields.append(key);
    fields.append("\":");
  }
};

}  // namespace framed::proto
