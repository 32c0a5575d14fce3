#pragma once
// What every subcommand shares: the target, the framing, the timeout and
// --json, how to connect, and the request/answer round trip of the
// commands whose answer is small.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "codec/framing.hpp"
#include "connection.hpp"
#include "reply_head.hpp"
#include "request.hpp"
#include "target.hpp"

namespace framed::framectl {

// Bodies framectl holds in memory (echo, exec output, stats, list, stdin
// sent as a body): the daemon's default max_body, 64 MiB.
inline constexpr std::uint64_t kMaxHeldBody = 64ULL << 20;

struct Answer {
  ReplyHead head;
  std::string body;
};

class Session {
 public:
  Session(Target target, codec::Framing framing, TimeoutMs timeout, bool json)
      : target_(std::move(target)), framing_(framing), timeout_(timeout), json_(json) {}

  // A listener with auth = "token": every connection authenticates first.
  void set_token(std::string token) { token_ = std::move(token); }

  [[nodiscard]] const Target& target() const noexcept { return target_; }
  [[nodiscard]] codec::Framing framing() const noexcept { return framing_; }
  [[nodiscard]] TimeoutMs timeout() const noexcept { return timeout_; }
  [[nodiscard]] bool json() const noexcept { return json_; }
  // Requests are "COMMAND ARGS" payloads: --framing length|line, or UDP.
  [[nodiscard]] bool simple_mode() const noexcept {
    return framing_ != codec::Framing::json || target_.transport == Transport::udp;
  }
  // A usage failure unless this session speaks the json framing.
  void require_json_framing(std::string_view command) const;

  // A connection to the target, authenticated when a token was given (an
  // error reply to `auth` is a Failure, as any other).
  [[nodiscard]] std::unique_ptr<StreamConnection> connect() const;

  // Sends one request with `body` on a new connection and reads the whole
  // answer (its body up to kMaxHeldBody).
  [[nodiscard]] std::unique_ptr<Answer> request(const JsonRequest& request, std::string_view body = {}) const;

  // For an error reply: prints it (with --json, as a line on stdout) and
  // throws its Failure (exit status 1). Does nothing for ok replies.
  void check_ok(const ReplyHead& head, std::string_view body_members = {}) const;

 private:
  Target target_;
  codec::Framing framing_;
  TimeoutMs timeout_;
  bool json_;
  std::optional<std::string> token_;

  void authenticate(StreamConnection& connection) const;
};

// All of stdin, up to kMaxHeldBody bytes (a request body's size goes in its
// header, before the body).
std::string read_stdin();

// Writes the daemon's error as a Failure: "framectl: CODE: MESSAGE", status 1.
[[noreturn]] void fail_reply(const ReplyHead& head);

}  // namespace framed::framectl
