#include "session.hpp"

#include <unistd.h>

#include <cerrno>

#include "base/errno_text.hpp"
#include "failure.hpp"
#include "output.hpp"

namespace framed::framectl {

void Session::require_json_framing(std::string_view command) const {
  if (!simple_mode()) return;
  std::string message(command);
  message.append(" needs the json framing on a stream socket (--tcp or --unix without --framing length|line)");
  fail_usage(message);
}

std::unique_ptr<StreamConnection> Session::connect() const {
  auto connection = std::make_unique<StreamConnection>(target_, framing_, timeout_);
  if (token_) authenticate(*connection);
  return connection;
}

void Session::authenticate(StreamConnection& connection) const {
  if (simple_mode()) {
    std::string payload("auth ");
    payload.append(*token_);
    connection.send_all(simple_frame(framing_, payload));
    if (auto error = simple_error(connection.read_payload())) {
      throw Failure(ExitStatus::error_reply, std::move(error->code), std::move(error->message));
    }
    return;
  }
  connection.send_all(JsonRequest("auth").field("token", *token_).head(0));
  ReplyHead head;
  connection.read_head(head);
  [[maybe_unused]] const std::string body = connection.read_body_string(kMaxHeldBody);
  check_ok(head);
}

std::unique_ptr<Answer> Session::request(const JsonRequest& request, std::string_view body) const {
  auto connection = connect();
  auto answer = std::make_unique<Answer>();
  std::string frame = request.head(body.size());
  frame.append(body);
  connection->send_all(frame);
  connection->read_head(answer->head);
  answer->body = connection->read_body_string(kMaxHeldBody);
  return answer;
}

void Session::check_ok(const ReplyHead& head, std::string_view body_members) const {
  if (head.ok()) return;
  if (json_) write_stdout(json_line(head, body_members));
  fail_reply(head);
}

void fail_reply(const ReplyHead& head) { throw Failure(ExitStatus::error_reply, head.error_code(), head.error_message()); }

std::string read_stdin() {
  std::string data;
  char chunk[64 * 1024];
  while (true) {
    const ssize_t got = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (got == 0) return data;
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Failure(ExitStatus::local_file, "io", concat("cannot read stdin: ", base::errno_text(errno)));
    }
    if (data.size() + static_cast<std::size_t>(got) > kMaxHeldBody) {
      throw Failure(ExitStatus::usage, "usage", "stdin is larger than 64 MiB, the most one request body can hold");
    }
    data.append(chunk, static_cast<std::size_t>(got));
  }
}

}  // namespace framed::framectl
