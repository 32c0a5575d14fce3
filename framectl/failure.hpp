#pragma once
// How framectl fails: every failure becomes one line on stderr,
// "framectl: CODE: MESSAGE", and an exit status that says whose fault it
// was (framectl.1, EXIT STATUS). Code deep in a transfer throws Failure;
// main() alone prints it and exits.

#include <stdexcept>
#include <string>
#include <utility>

namespace framed::framectl {

enum class ExitStatus : int {
  ok = 0,
  error_reply = 1,  // the daemon answered with an error, or a checksum did not match
  usage = 2,        // the command line is wrong (nothing was sent)
  connection = 3,   // connecting failed, the connection broke, a timeout, a reply that is not the protocol
  local_file = 4,   // a local file could not be read or written
};

class Failure : public std::runtime_error {
 public:
  // `code` is the daemon's error code for error replies, else one of
  // framectl's own: usage, connection, timeout, protocol, io, checksum.
  Failure(ExitStatus status, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}

  [[nodiscard]] ExitStatus status() const noexcept { return status_; }
  [[nodiscard]] const std::string& code() const noexcept { return code_; }

 private:
  ExitStatus status_;
  std::string code_;
};

// Joins message parts by appending (g++ 12 at -O3 misreads
// `"literal" + std::string` as an overlapping copy: -Wrestrict).
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::string text;
  (text.append(parts), ...);
  return text;
}

[[noreturn]] inline void fail_usage(const std::string& message) {
  throw Failure(ExitStatus::usage, "usage", message);
}

}  // namespace framed::framectl
