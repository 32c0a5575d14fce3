#include "proto/request.hpp"

#include "proto/json_writer.hpp"

namespace framed::proto {

std::optional<std::string> parse_json_request(simdjson::dom::object header, std::string_view body, Request& out) {
  out.reset();
  out.mode = RequestMode::json;
  out.header = header;
  out.body = body;
  bool have_command = false;
  std::optional<std::string> problem;
  for (const auto field : header) {
    const std::string_view key = field.key;
    if (key == "cmd") {
      std::string_view command;
      if (field.value.get_string().get(command) != simdjson::SUCCESS) {
        problem = "\"cmd\" must be a string";
        continue;
      }
      out.command = command;
      have_command = true;
    } else if (key == "id") {
      out.id_json.clear();
      std::int64_t signed_id;
      std::uint64_t unsigned_id;
      std::string_view text_id;
      if (field.value.get_int64().get(signed_id) == simdjson::SUCCESS) {
        append_json_int(out.id_json, signed_id);
      } else if (field.value.get_uint64().get(unsigned_id) == simdjson::SUCCESS) {
        append_json_uint(out.id_json, unsigned_id);
      } else if (field.value.get_string().get(text_id) == simdjson::SUCCESS) {
        append_json_string(out.id_json, text_id);
      } else {
        problem = "\"id\" must be an integer or a string";
      }
    } else if (key == "args") {
      simdjson::dom::array args;
      if (field.value.get_array().get(args) != simdjson::SUCCESS) {
        problem = "\"args\" must be an array of strings";
        continue;
      }
      for (const auto arg : args) {
        std::string_view text;
        if (arg.get_string().get(text) != simdjson::SUCCESS) {
          problem = "\"args\" must be an array of strings";
          break;
        }
        out.args.push_back(text);
      }
    }
  }
  if (!problem && !have_command) problem = "the header has no \"cmd\" string";
  return problem;
}

void parse_simple_request(std::string_view payload, std::optional<std::string_view> forced_command,
                          Request& out) {
  out.reset();
  out.mode = RequestMode::simple;
  if (forced_command) {
    out.command = *forced_command;
    out.body = payload;
    return;
  }
  const auto space = payload.find(' ');
  if (space == std::string_view::npos) {
    out.command = payload;
  } else {
    out.command = payload.substr(0, space);
    out.body = payload.substr(space + 1);
  }
}

void split_words(std::string_view text, std::vector<std::string_view>& out) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto end = text.find(' ', pos);
    const auto word_end = end == std::string_view::npos ? text.size() : end;
    if (word_end > pos) out.push_back(text.substr(pos, word_end - pos));
    pos = word_end + 1;
  }
}

}  // namespace framed::proto
