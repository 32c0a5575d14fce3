#pragma once
// Running one command to completion on the calling (worker) thread: spawn it
// (spawn.hpp), feed its stdin, capture stdout and stderr apart, enforce the
// timeout and the output cap, reap it. Blocks for as long as the command
// runs, so it belongs on a worker thread, never on the reactor.
//
// Guarantees, whatever the command does:
//  * it is reaped before run_child returns: no zombie is ever left;
//  * when the command (its first process) exits, whatever it left running in
//    its process group is killed (SIGKILL) before it is reaped;
//  * on timeout, on output past max_output, and on cancellation the whole
//    process group gets SIGTERM, then SIGKILL after kill_grace (cancellation:
//    SIGKILL at once);
//  * memory held is bounded by max_output per stream plus the stdin bytes.
//
// Thread-safe: any number of threads may run commands at once.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "exec/spawn.hpp"

namespace framed::exec {

enum class OutputStream : std::uint8_t { stdout_stream, stderr_stream };

// Where output goes while the command runs, instead of being captured
// (exec with "stream": true). Called on the worker thread that runs it.
class OutputSink {
 public:
  // False: the chunks handed on are not consumed yet; the pipes are not read
  // (a command that writes more blocks on its full pipe) and ready() is
  // asked again a few milliseconds later. Deadlines still apply meanwhile.
  [[nodiscard]] virtual bool ready() = 0;
  // The next chunk of one stream, in the order read; max_output still caps
  // each stream's total.
  virtual void write(OutputStream stream, std::string_view chunk) = 0;

 protected:
  ~OutputSink() = default;
};

struct RunRequest {
  SpawnRequest spawn;
  std::string stdin_data;  // written to the child's stdin, then stdin is closed
  std::chrono::nanoseconds timeout = std::chrono::seconds(10);
  std::uint64_t max_output = 1ULL << 20;  // per stream: stdout and stderr each
  // Between SIGTERM and SIGKILL: time for a well-behaved program to clean up.
  std::chrono::nanoseconds kill_grace = std::chrono::seconds(1);
  // Set: output is handed to it as it is read, and not kept in RunResult.
  OutputSink* output_sink = nullptr;
};

enum class RunOutcome : std::uint8_t {
  finished,   // it exited or was killed by a signal (output possibly truncated)
  timed_out,  // the timeout passed first; exit_code/signal say how it ended
  cancelled,  // the cancel fd became readable (daemon shutting down)
  failed,     // it could not be started (or supervised): see `error`
};

struct CapturedOutput {
  std::string bytes;       // at most max_output bytes (empty with an output_sink)
  std::uint64_t size = 0;  // bytes kept: captured, or handed to the output_sink
  bool truncated = false;  // the command wrote more than that
};

struct RunResult {
  RunOutcome outcome = RunOutcome::failed;
  int exit_code = 0;  // its exit status, or 128 + N after signal N (shell convention)
  int signal = 0;     // N when a signal ended it, else 0
  CapturedOutput out;
  CapturedOutput err;
  std::string error;  // failed: what went wrong, e.g. "execve /x: No such file or directory"
  std::chrono::nanoseconds elapsed{};  // from spawn to reap
};

// `cancel_fd` (optional, -1 for none) is polled alongside the child: once it
// is readable the command is killed at once and the run ends `cancelled`.
// The worker pool's cancel_fd() is meant for it.
RunResult run_child(const RunRequest& request, int cancel_fd = -1);

}  // namespace framed::exec
