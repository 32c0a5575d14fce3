// Simple mode: the payload "COMMAND ARGS" over the length or line framing
// or one UDP datagram; the reply is the output, or "ERR CODE MESSAGE".

#include <simdjson.h>

#include "commands.hpp"
#include "failure.hpp"
#include "output.hpp"
#include "proto/json_writer.hpp"

namespace framed::framectl {
namespace {

std::string send_simple(const Session& session, const std::string& payload) {
  if (session.target().transport == Transport::udp) {
    DatagramConnection connection(session.target(), session.timeout());
    return connection.exchange(payload);
  }
  auto connection = session.connect();
  connection->send_all(simple_frame(session.framing(), payload));
  return connection->read_payload();
}

}  // namespace

int run_simple(const Session& session, const std::string& command, const std::string& arguments) {
  std::string payload = command;
  if (!arguments.empty()) {
    payload.push_back(' ');
    payload.append(arguments);
  }
  const std::string reply = send_simple(session, payload);

  // "ERR CODE MESSAGE". A command's output that itself starts so (an echo
  // of "ERR x y") cannot be told apart: simple mode has no header.
  if (reply.starts_with("ERR ")) {
    const std::string_view rest = std::string_view(reply).substr(4);
    const auto space = rest.find(' ');
    const std::string code(rest.substr(0, space));
    std::string message(space == std::string_view::npos ? std::string_view("(no message)") : rest.substr(space + 1));
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) message.pop_back();
    if (session.json()) {
      std::string line = "{\"ok\":false,\"error\":{\"code\":";
      proto::append_json_string(line, code);
      line.append(",\"message\":");
      proto::append_json_string(line, message);
      line.append("}}\n");
      write_stdout(line);
    }
    throw Failure(ExitStatus::error_reply, code, message);
  }

  if (session.json()) {
    std::string line = "{\"ok\":true";
    append_bytes_member(line, "body", reply);
    line.append("}\n");
    write_stdout(line);
    return 0;
  }
  if (command == "stats" || command == "help") {
    simdjson::dom::parser parser;
    simdjson::dom::element value;
    if (parser.parse(reply).get(value) == simdjson::SUCCESS) {
      write_stdout(pretty_json(value));
      return 0;
    }
  }
  write_stdout(reply);
  if (!reply.ends_with('\n')) write_stdout("\n");
  return 0;
}

}  // namespace framed::framectl
