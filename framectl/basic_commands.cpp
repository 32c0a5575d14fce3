// ping, echo, upper, stats and help over the json framing.

#include <simdjson.h>

#include "commands.hpp"
#include "failure.hpp"
#include "output.hpp"
#include "proto/json_writer.hpp"

namespace framed::framectl {
namespace {

std::string join(const std::vector<std::string>& words) {
  std::string text;
  for (const auto& word : words) {
    if (!text.empty()) text.push_back(' ');
    text.append(word);
  }
  return text;
}

// ,"body":<the body's JSON> for stats and help, whose bodies are JSON.
std::string json_body_member(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element value;
  std::string member;
  if (parser.parse(body).get(value) != simdjson::SUCCESS) {
    append_bytes_member(member, "body", body);
    return member;
  }
  member = ",\"body\":";
  member.append(simdjson::minify(value));
  return member;
}

}  // namespace

int run_ping(const Session& session) {
  if (session.simple_mode()) return run_simple(session, "ping", "");
  const auto answer = session.request(JsonRequest("ping"));
  session.check_ok(answer->head);
  write_stdout(session.json() ? json_line(answer->head) : "pong\n");
  return 0;
}

int run_text(const Session& session, const std::string& command, const std::vector<std::string>& words) {
  const bool from_stdin = words.size() == 1 && words.front() == "-";
  const std::string text = from_stdin ? read_stdin() : join(words);
  if (session.simple_mode()) return run_simple(session, command, text);
  const auto answer = session.request(JsonRequest(command), text);
  std::string members;
  append_bytes_member(members, "body", answer->body);
  session.check_ok(answer->head, members);
  if (session.json()) {
    write_stdout(json_line(answer->head, members));
  } else {
    // Words from the command line are a line of text, like echo(1)'s;
    // stdin's bytes come back exactly as they were.
    write_stdout(answer->body);
    if (!from_stdin) write_stdout("\n");
  }
  return 0;
}

namespace {

// stats and help: a json body that --json prints as a member of the reply's
// line. Null when it was printed so; otherwise the body, for the caller to
// render for people.
std::unique_ptr<Answer> request_json_body(const Session& session, const JsonRequest& request) {
  auto answer = session.request(request);
  const std::string members = json_body_member(answer->body);
  session.check_ok(answer->head, members);
  if (!session.json()) return answer;
  write_stdout(json_line(answer->head, members));
  return nullptr;
}

}  // namespace

int run_stats(const Session& session, bool reset) {
  if (session.simple_mode()) return run_simple(session, "stats", reset ? "reset" : "");
  JsonRequest request("stats");
  if (reset) request.field("reset", true);
  const auto answer = request_json_body(session, request);
  if (!answer) return 0;
  simdjson::dom::parser parser;
  simdjson::dom::element stats;
  if (parser.parse(answer->body).get(stats) != simdjson::SUCCESS) {
    throw Failure(ExitStatus::connection, "protocol", "the stats body is not JSON");
  }
  write_stdout(pretty_json(stats));
  return 0;
}

int run_help(const Session& session) {
  if (session.simple_mode()) return run_simple(session, "help", "");
  const auto answer = request_json_body(session, JsonRequest("help"));
  if (!answer) return 0;
  simdjson::dom::parser parser;
  simdjson::dom::array commands;
  if (parser.parse(answer->body).get_array().get(commands) != simdjson::SUCCESS) {
    throw Failure(ExitStatus::connection, "protocol", "the help body is not a JSON array");
  }
  std::string text;
  for (const auto command : commands) {
    std::string_view name;
    std::string_view summary;
    bool enabled = true;
    if (command["name"].get_string().get(name) != simdjson::SUCCESS) continue;
    if (command["summary"].get_string().get(summary) != simdjson::SUCCESS) summary = {};
    if (command["enabled"].get_bool().get(enabled) != simdjson::SUCCESS) enabled = true;
    std::string line(name);
    line.resize(std::max<std::size_t>(line.size() + 2, 12), ' ');
    line.append(summary);
    if (!enabled) line.append(" (disabled here)");
    line.push_back('\n');
    text.append(line);
  }
  write_stdout(text);
  return 0;
}

}  // namespace framed::framectl
