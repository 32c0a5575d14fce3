#pragma once
// Appends JSON text to a std::string. simdjson 3.0 (Debian 12) parses but does
// not serialise, and what framed writes is small and flat (reply headers,
// stats, help), so this is the one place that knows JSON's escaping rules.
// Output strings are expected to be UTF-8; bytes >= 0x80 pass through as they
// are, control characters are escaped, so the output is always one valid
// JSON token for valid UTF-8 input.

#include <cstdint>
#include <string>
#include <string_view>

namespace framed::proto {

void append_json_string(std::string& out, std::string_view text);
void append_json_uint(std::string& out, std::uint64_t value);
void append_json_int(std::string& out, std::int64_t value);

// Builds a JSON object or array piece by piece, taking care of commas.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }
  // Starts a member: writes the comma if needed, then "key": (escaped: keys
  // may be operator-chosen names, such as a listener's).
  JsonWriter& key(std::string_view name);

  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(bool flag);
  JsonWriter& value(std::uint64_t number);
  JsonWriter& value(std::int64_t number);
  JsonWriter& value(unsigned number) { return value(std::uint64_t{number}); }
  JsonWriter& value(int number) { return value(std::int64_t{number}); }
  JsonWriter& value(double number);

 private:
  JsonWriter& open(char bracket);
  JsonWriter& close(char bracket);
  void separate();

  std::string& out_;
  bool need_comma_ = false;
  bool after_key_ = false;
};

}  // namespace framed::proto
