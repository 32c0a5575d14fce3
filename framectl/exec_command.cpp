// exec: a command configured by name in the daemon; its stdout to our
// stdout, its stderr to our stderr, its exit code as our exit status.

#include <string>

#include "commands.hpp"
#include "failure.hpp"
#include "output.hpp"

namespace framed::framectl {
namespace {

int exit_status_of(const ReplyHead& head) {
  // A signal death is already 128+N in exit_code (and N in "signal").
  const std::int64_t code = head.int_field("exit_code").value_or(0);
  return static_cast<int>(code & 0xFF);
}

void note_truncated(const Session& session, const ReplyHead& head) {
  if (!session.json() && head.bool_field("truncated").value_or(false)) {
    write_stderr("framectl: truncated: the output passed the command's max_output; the command was killed\n");
  }
}

// The reply of an exec without "stream": body = stdout bytes, then stderr.
int finish_whole(const Session& session, StreamConnection& connection, const ReplyHead& head) {
  const std::uint64_t stdout_size = head.uint_field("stdout_size").value_or(head.body_size());
  if (session.json()) {
    const std::string body = connection.read_body_string(kMaxHeldBody);
    const std::size_t split = static_cast<std::size_t>(std::min<std::uint64_t>(stdout_size, body.size()));
    std::string members;
    append_bytes_member(members, "stdout", std::string_view(body).substr(0, split));
    append_bytes_member(members, "stderr", std::string_view(body).substr(split));
    session.check_ok(head, members);
    write_stdout(json_line(head, members));
    return exit_status_of(head);
  }
  // Written as it arrives, even for an error reply: a timeout still
  // carries what the command wrote before it was killed.
  std::uint64_t offset = 0;
  connection.read_body([&](std::string_view piece) {
    if (offset < stdout_size) {
      const std::size_t to_stdout = static_cast<std::size_t>(std::min<std::uint64_t>(stdout_size - offset, piece.size()));
      write_stdout(piece.substr(0, to_stdout));
      write_stderr(piece.substr(to_stdout));
    } else {
      write_stderr(piece);
    }
    offset += piece.size();
  });
  session.check_ok(head);
  note_truncated(session, head);
  return exit_status_of(head);
}

}  // namespace

int run_exec(const Session& session, const std::string& name, std::vector<std::string> args, bool follow) {
  const bool send_stdin = !args.empty() && args.front() == "-";
  if (send_stdin) args.erase(args.begin());
  if (session.simple_mode()) {
    if (send_stdin) fail_usage("exec with stdin (-) needs the json framing");
    if (follow) fail_usage("exec --follow needs the json framing");
    std::string arguments = name;
    for (const auto& arg : args) {
      arguments.push_back(' ');
      arguments.append(arg);
    }
    return run_simple(session, "exec", arguments);
  }

  const std::string input = send_stdin ? read_stdin() : std::string();
  JsonRequest request("exec");
  request.field("name", std::string_view(name));
  if (!args.empty()) request.args(args);
  if (follow) request.field("stream", true);

  auto connection = session.connect();
  std::string frame = request.head(input.size());
  frame.append(input);
  connection->send_all(frame);

  ReplyHead head;
  while (true) {
    connection->read_head(head);
    if (head.event() != "output") break;
    // --follow: each chunk as it comes, to the stream it came from.
    if (session.json()) {
      const std::string body = connection->read_body_string(kMaxHeldBody);
      std::string members;
      append_bytes_member(members, "body", body);
      write_stdout(json_line(head, members));
      continue;
    }
    const bool to_stderr = head.string_field("stream").value_or("stdout") == "stderr";
    connection->read_body([to_stderr](std::string_view piece) {
      if (to_stderr) {
        write_stderr(piece);
      } else {
        write_stdout(piece);
      }
    });
  }
  if (!head.event().empty()) {
    throw Failure(ExitStatus::connection, "protocol", concat("an unexpected event in an exec reply: ", head.text()));
  }
  return finish_whole(session, *connection, head);
}

}  // namespace framed::framectl
