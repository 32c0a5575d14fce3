// publish and subscribe. A subscriber blocks SIGINT and SIGTERM and reads
// them from a signalfd polled beside the socket, so Ctrl-C ends it between
// two events, cleanly, with exit status 0.

#include <signal.h>
#include <sys/signalfd.h>

#include <cerrno>

#include "base/errno_text.hpp"
#include "base/unique_fd.hpp"
#include "commands.hpp"
#include "failure.hpp"
#include "output.hpp"

namespace framed::framectl {

int run_publish(const Session& session, const std::string& channel, const std::string& message) {
  if (session.simple_mode()) return run_simple(session, "publish", concat(channel, " ", message));
  JsonRequest request("publish");
  request.field("channel", std::string_view(channel));
  const auto answer = session.request(request, message);
  session.check_ok(answer->head);
  if (session.json()) {
    write_stdout(json_line(answer->head));
  } else {
    write_stdout(std::to_string(answer->head.uint_field("receivers").value_or(0)) + "\n");
  }
  return 0;
}

int run_subscribe(const Session& session, const std::vector<std::string>& channels) {
  session.require_json_framing("subscribe");
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (::sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) {
    throw Failure(ExitStatus::local_file, "io", concat("cannot block SIGINT: ", base::errno_text(errno)));
  }
  const base::UniqueFd signal_fd(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd) throw Failure(ExitStatus::local_file, "io", concat("cannot open a signalfd: ", base::errno_text(errno)));

  try {
    auto connection = session.connect();
    connection->set_interrupt_fd(signal_fd.get());
    std::string requests;
    for (const auto& channel : channels) {
      JsonRequest request("subscribe");
      request.field("channel", std::string_view(channel));
      requests.append(request.head(0));
    }
    connection->send_all(requests);

    const bool several = channels.size() > 1;
    std::size_t replies_due = channels.size();
    ReplyHead head;
    while (true) {
      if (!connection->read_head_unless_closed(head)) return 0;  // the daemon ended it (shutdown)
      const std::string_view event = head.event();
      if (event.empty()) {
        // A subscribe reply; events may come between them.
        const std::string body = connection->read_body_string(kMaxHeldBody);
        session.check_ok(head);
        if (session.json()) write_stdout(json_line(head));
        // Subscribed: from now on waiting for the next event has no bound.
        if (replies_due > 0 && --replies_due == 0) connection->set_timeout(-1);
        continue;
      }
      const std::string body = connection->read_body_string(kMaxHeldBody);
      if (session.json()) {
        std::string members;
        append_bytes_member(members, "body", body);
        write_stdout(json_line(head, members));
      }
      if (event == "dropped") {
        throw Failure(ExitStatus::error_reply, std::string(head.string_field("reason").value_or("dropped")),
                      "the daemon dropped this subscriber: it fell too far behind");
      }
      if (event != "message" || session.json()) continue;
      std::string line;
      if (several) {
        line.append(head.string_field("channel").value_or(""));
        line.push_back(' ');
      }
      line.append(body);
      line.push_back('\n');
      write_stdout(line);
    }
  } catch (const Interrupted&) {
    return 0;  // Ctrl-C (or SIGTERM): the normal way to stop a subscriber
  }
}

}  // namespace framed::framectl
