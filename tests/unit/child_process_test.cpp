// Tests for lib/exec: spawning and running real processes (/bin/echo,
// /bin/sh -c, /bin/sleep, yes) and peer credentials.
// Every test ends with no child of ours left, zombie or not.

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.hpp"
#include "exec/child_process.hpp"
#include "exec/peer_credentials.hpp"
#include "exec/spawn.hpp"

using framed::exec::RunOutcome;
using framed::exec::RunRequest;
using framed::exec::RunResult;
using namespace std::chrono_literals;

namespace {

RunRequest command(std::vector<std::string> argv) {
  RunRequest request;
  request.spawn.argv = std::move(argv);
  request.spawn.env = {"PATH=/usr/bin:/bin"};
  request.timeout = 10s;
  return request;
}

RunRequest shell(const std::string& script) { return command({"/bin/sh", "-c", script, "sh"}); }

// No child of this process is left, not even a zombie.
bool no_children_left() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

// A process that is gone or only a zombie (reparented to init, waiting for
// it): nothing of it runs.
bool process_dead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  const auto paren = line.rfind(')');
  return paren == std::string::npos || line.substr(paren + 2, 1) == "Z";
}

// SIGKILL has been sent when run_child returns, but dying takes the kernel
// a moment (longer on a loaded machine): allow it a second.
bool process_gone(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + 1s;
  while (!process_dead(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::set<std::string> lines_of(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.insert(line);
  return out;
}

}  // namespace

TEST_CASE("run_child: stdout, stderr and exit code come back apart", "[exec][child_process]") {
  const RunResult echo = run_child(command({"/bin/echo", "hello", "world"}));
  CHECK(echo.outcome == RunOutcome::finished);
  CHECK(echo.exit_code == 0);
  CHECK(echo.signal == 0);
  CHECK(echo.out.bytes == "hello world\n");
  CHECK(echo.err.bytes.empty());

  const RunResult mixed = run_child(shell("echo out; echo err >&2; exit 3"));
  CHECK(mixed.outcome == RunOutcome::finished);
  CHECK(mixed.exit_code == 3);
  CHECK(mixed.out.bytes == "out\n");
  CHECK(mixed.err.bytes == "err\n");
  CHECK_FALSE(mixed.out.truncated);
  CHECK(no_children_left());
}

TEST_CASE("run_child: the body is stdin, also when larger than a pipe", "[exec][child_process]") {
  RunRequest cat = command({"/bin/cat"});
  cat.stdin_data.assign(3 << 20, 'x');  // 3 MiB: many pipe buffers, both ways at once
  for (std::size_t i = 0; i < cat.stdin_data.size(); i += 4096) cat.stdin_data[i] = static_cast<char>('a' + i % 26);
  cat.max_output = 4 << 20;
  const RunResult result = run_child(cat);
  CHECK(result.outcome == RunOutcome::finished);
  CHECK(result.exit_code == 0);
  CHECK(result.out.bytes == cat.stdin_data);

  // A command that never reads its stdin still finishes (EPIPE is no error).
  RunRequest ignore = command({"/bin/true"});
  ignore.stdin_data.assign(1 << 20, 'y');
  const RunResult ignored = run_child(ignore);
  CHECK(ignored.outcome == RunOutcome::finished);
  CHECK(ignored.exit_code == 0);
  CHECK(no_children_left());
}

TEST_CASE("run_child: a signal death is 128+N with signal N", "[exec][child_process]") {
  const RunResult result = run_child(shell("kill -TERM $$"));
  CHECK(result.outcome == RunOutcome::finished);
  CHECK(result.signal == SIGTERM);
  CHECK(result.exit_code == 128 + SIGTERM);
}

TEST_CASE("run_child: timeout stops the whole group with SIGTERM", "[exec][child_process]") {
  RunRequest request = shell("sleep 30 & echo $!; sleep 30");
  request.timeout = 300ms;
  const auto started = std::chrono::steady_clock::now();
  const RunResult result = run_child(request);
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(result.outcome == RunOutcome::timed_out);
  CHECK(result.signal == SIGTERM);
  CHECK(took >= 300ms);
  CHECK(took < 1300ms);
  const pid_t background = std::stoi(result.out.bytes);
  CHECK(process_gone(background));
  CHECK(no_children_left());
}

TEST_CASE("run_child: SIGKILL after the grace period when SIGTERM is ignored", "[exec][child_process]") {
  // `trap '' TERM` ignores it in the shell and in the sleep it starts.
  RunRequest request = shell("trap '' TERM; sleep 30");
  request.timeout = 200ms;
  request.kill_grace = 300ms;
  const auto started = std::chrono::steady_clock::now();
  const RunResult result = run_child(request);
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(result.outcome == RunOutcome::timed_out);
  CHECK(result.signal == SIGKILL);
  CHECK(result.exit_code == 128 + SIGKILL);
  CHECK(took >= 500ms);
  CHECK(took < 1500ms);
  CHECK(no_children_left());
}

TEST_CASE("run_child: what the command leaves in its group dies with it", "[exec][child_process]") {
  // The background sleep keeps stdout open: without the group kill this
  // would wait for the timeout.
  RunRequest request = shell("sleep 30 & echo $!");
  request.timeout = 5s;
  const auto started = std::chrono::steady_clock::now();
  const RunResult result = run_child(request);
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(result.outcome == RunOutcome::finished);
  CHECK(result.exit_code == 0);
  CHECK(process_gone(std::stoi(result.out.bytes)));
  CHECK(no_children_left());
}

TEST_CASE("run_child: output past max_output is cut and the command killed", "[exec][child_process]") {
  RunRequest request = command({"/usr/bin/yes"});
  request.max_output = 64 * 1024;
  const auto started = std::chrono::steady_clock::now();
  const RunResult result = run_child(request);
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(result.outcome == RunOutcome::finished);
  CHECK(result.out.truncated);
  CHECK_FALSE(result.err.truncated);
  CHECK(result.out.bytes.size() == 64 * 1024);
  CHECK(result.out.bytes.substr(0, 4) == "y\ny\n");
  // SIGPIPE (its next write) or SIGTERM (ours), whichever came first.
  CHECK((result.signal == SIGPIPE || result.signal == SIGTERM));

  SECTION("stderr is capped on its own") {
    RunRequest errors = shell("echo fine; yes >&2");
    errors.max_output = 1000;
    const RunResult capped = run_child(errors);
    CHECK(capped.out.bytes == "fine\n");
    CHECK_FALSE(capped.out.truncated);
    CHECK(capped.err.truncated);
    CHECK(capped.err.bytes.size() == 1000);
  }
  SECTION("exactly max_output is not truncated") {
    RunRequest exact = command({"/usr/bin/head", "-c", "1000", "/dev/zero"});
    exact.max_output = 1000;
    const RunResult whole = run_child(exact);
    CHECK(whole.exit_code == 0);
    CHECK(whole.out.bytes.size() == 1000);
    CHECK_FALSE(whole.out.truncated);
  }
  SECTION("max_output 0 allows no output at all") {
    RunRequest none = command({"/bin/echo", "x"});
    none.max_output = 0;
    const RunResult cut = run_child(none);
    CHECK(cut.out.bytes.empty());
    CHECK(cut.out.truncated);
  }
  CHECK(no_children_left());
}

TEST_CASE("run_child: the child's world is clean", "[exec][child_process]") {
  // What the daemon does to itself must not reach the child: an ignored
  // SIGPIPE, blocked signals, an fd without O_CLOEXEC.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction saved_pipe {};
  ::sigaction(SIGPIPE, &ignore, &saved_pipe);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGHUP);
  sigset_t saved_mask;
  ::pthread_sigmask(SIG_BLOCK, &block, &saved_mask);
  const framed::base::UniqueFd leak(::open("/dev/null", O_RDONLY));  // no O_CLOEXEC on purpose
  REQUIRE(leak.valid());

  SECTION("yes | head -n 1 finishes: SIGPIPE is back to its default") {
    const RunResult result = run_child(shell("yes | head -n 1"));
    CHECK(result.outcome == RunOutcome::finished);
    CHECK(result.exit_code == 0);
    CHECK(result.out.bytes == "y\n");
  }
  SECTION("no signal blocked, none ignored") {
    const RunResult result = run_child(command({"/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}));
    CHECK(result.out.bytes == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  }
  SECTION("only fds 0, 1 and 2 are open") {
    // ls itself opens the directory it lists: that is fd 3.
    const RunResult result = run_child(command({"/bin/ls", "/proc/self/fd"}));
    CHECK(lines_of(result.out.bytes) == std::set<std::string>{"0", "1", "2", "3"});
    const RunResult shell_fds = run_child(shell("exec 2>/dev/null; for fd in 3 4 5 6 7 8 9; do if : <&$fd; then echo open $fd; fi; done"));
    CHECK(shell_fds.out.bytes.empty());
  }
  SECTION("its own session and process group") {
    // The shell's own /proc/self/stat: pid (comm) state ppid pgrp session.
    const RunResult result = run_child(shell("read -r line < /proc/self/stat; echo \"$line\""));
    std::istringstream fields(result.out.bytes.substr(result.out.bytes.rfind(')') + 2));
    std::string state;
    long ppid = 0;
    long pgrp = 0;
    long session = 0;
    fields >> state >> ppid >> pgrp >> session;
    const long pid = std::stol(result.out.bytes);
    CHECK(pgrp == pid);
    CHECK(session == pid);
    CHECK(ppid == ::getpid());
  }
  SECTION("the environment is exactly the configured one") {
    RunRequest request = command({"/usr/bin/env"});
    request.spawn.env = {"ONLY=this", "PATH=/bin"};
    CHECK(run_child(request).out.bytes == "ONLY=this\nPATH=/bin\n");
    request.spawn.env.clear();
    CHECK(run_child(request).out.bytes.empty());
  }

  ::pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr);
  ::sigaction(SIGPIPE, &saved_pipe, nullptr);
  CHECK(no_children_left());
}

TEST_CASE("run_child: cwd and resource limits apply before the program starts", "[exec][child_process]") {
  RunRequest pwd = command({"/bin/pwd"});
  pwd.spawn.cwd = "/tmp";
  CHECK(run_child(pwd).out.bytes == "/tmp\n");

  RunRequest limits = shell("ulimit -n; ulimit -t; ulimit -v; ulimit -H -t");
  limits.spawn.limits.open_files = 17;
  limits.spawn.limits.cpu_seconds = 5;
  limits.spawn.limits.address_space = 512ULL << 20;
  // The CPU hard limit is one second above the soft one: SIGXCPU, then SIGKILL.
  CHECK(run_child(limits).out.bytes == "17\n5\n524288\n6\n");

  SECTION("a CPU hog is stopped by RLIMIT_CPU") {
    RunRequest hog = shell("while :; do :; done");
    hog.spawn.limits.cpu_seconds = 1;
    const RunResult result = run_child(hog);
    CHECK(result.outcome == RunOutcome::finished);
    CHECK(result.signal == SIGXCPU);
  }
  CHECK(no_children_left());
}

TEST_CASE("run_child: what cannot start is reported, and reaped", "[exec][child_process]") {
  const RunResult missing = run_child(command({"/nonexistent/program"}));
  CHECK(missing.outcome == RunOutcome::failed);
  CHECK(missing.error == "execve /nonexistent/program: No such file or directory");

  // EACCES, or ENOEXEC where it has an x bit: either way execve's error.
  const RunResult not_executable = run_child(command({"/etc/hostname"}));
  CHECK(not_executable.outcome == RunOutcome::failed);
  CHECK_THAT(not_executable.error, Catch::StartsWith("execve /etc/hostname: "));

  RunRequest bad_cwd = command({"/bin/true"});
  bad_cwd.spawn.cwd = "/nonexistent";
  const RunResult no_dir = run_child(bad_cwd);
  CHECK(no_dir.outcome == RunOutcome::failed);
  CHECK(no_dir.error == "chdir /nonexistent: No such file or directory");

  CHECK(run_child(command({})).outcome == RunOutcome::failed);
  CHECK(no_children_left());
}

TEST_CASE("run_child: the cancel fd stops a running command at once", "[exec][child_process]") {
  const framed::base::UniqueFd cancel(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  REQUIRE(cancel.valid());
  std::thread canceller([fd = cancel.get()] {
    std::this_thread::sleep_for(200ms);
    const std::uint64_t one = 1;
    CHECK(::write(fd, &one, sizeof one) == sizeof one);
  });
  const auto started = std::chrono::steady_clock::now();
  const RunResult result = run_child(command({"/bin/sleep", "30"}), cancel.get());
  canceller.join();
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(result.outcome == RunOutcome::cancelled);
  CHECK(result.signal == SIGKILL);
  CHECK(no_children_left());
}

TEST_CASE("run_child from many threads at once", "[exec][child_process]") {
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&good, t] {
      for (int i = 0; i < 10; ++i) {
        const std::string word = std::to_string(t) + ":" + std::to_string(i);
        const RunResult result = run_child(command({"/bin/echo", word}));
        if (result.outcome == RunOutcome::finished && result.out.bytes == word + "\n") good.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(good.load() == 80);
  CHECK(no_children_left());
}

TEST_CASE("peer credentials of a Unix socket, none for others", "[exec]") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  const framed::base::UniqueFd a(pair[0]);
  const framed::base::UniqueFd b(pair[1]);
  const auto peer = framed::exec::read_peer_credentials(a.get());
  REQUIRE(peer.has_value());
  CHECK(peer->pid == ::getpid());
  CHECK(peer->uid == ::getuid());
  CHECK(peer->gid == ::getgid());
  CHECK(peer->in_group(::getgid()));

  const framed::base::UniqueFd tcp(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  CHECK_FALSE(framed::exec::read_peer_credentials(tcp.get()).has_value());
}

namespace {

// An output sink that records what it is handed, and is not ready until
// `release_after` calls to ready() have been refused (a slow reactor).
class RecordingSink final : public framed::exec::OutputSink {
 public:
  explicit RecordingSink(int refuse = 0) : refuse_(refuse) {}
  bool ready() override {
    if (refuse_ > 0) {
      --refuse_;
      ++refused;
      return false;
    }
    return true;
  }
  void write(framed::exec::OutputStream stream, std::string_view chunk) override {
    (stream == framed::exec::OutputStream::stdout_stream ? out : err).append(chunk);
    ++chunks;
  }
  std::string out;
  std::string err;
  int chunks = 0;
  int refused = 0;

 private:
  int refuse_;
};

}  // namespace

TEST_CASE("an output sink gets the output as it is read, capped, and not captured", "[exec][child_process]") {
  using framed::exec::RunOutcome;
  SECTION("both streams, in order, nothing kept in the result") {
    RecordingSink sink;
    RunRequest request = shell("echo one; echo two >&2; sleep 0.05; echo three");
    request.output_sink = &sink;
    const RunResult result = run_child(request);
    CHECK(result.outcome == RunOutcome::finished);
    CHECK(sink.out == "one\nthree\n");
    CHECK(sink.err == "two\n");
    CHECK(result.out.bytes.empty());
    CHECK(result.out.size == 10);
    CHECK(result.err.size == 4);
  }
  SECTION("max_output caps what the sink is handed") {
    RecordingSink sink;
    RunRequest request = command({"/usr/bin/yes"});
    request.max_output = 100000;
    request.output_sink = &sink;
    const RunResult result = run_child(request);
    CHECK(result.out.truncated);
    CHECK(sink.out.size() == 100000);
    CHECK(result.out.size == 100000);
  }
  SECTION("a sink that is not ready pauses reading without losing bytes") {
    RecordingSink sink(50);
    RunRequest request = command({"/usr/bin/head", "-c", "300000", "/dev/zero"});
    request.output_sink = &sink;
    const RunResult result = run_child(request);
    CHECK(result.exit_code == 0);
    CHECK(sink.refused == 50);
    CHECK(sink.out == std::string(300000, '\0'));
  }
  SECTION("the timeout applies while the sink is not ready") {
    RecordingSink sink(1000000);
    RunRequest request = command({"/usr/bin/yes"});
    request.timeout = std::chrono::milliseconds(300);
    request.kill_grace = std::chrono::milliseconds(100);
    request.output_sink = &sink;
    const auto started = std::chrono::steady_clock::now();
    const RunResult result = run_child(request);
    CHECK(result.outcome == RunOutcome::timed_out);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));
  }
}
