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

  if (auto error = simple_error(reply)) {
    const std::string& code = error->code;
    const std::string& message = error->message;
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
