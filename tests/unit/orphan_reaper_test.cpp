// Tests for lib/exec/orphan_reaper: a command's escapes from its process
// group (setsid, double forks) end with its run. Real processes throughout.
//
// contain_orphans() makes this test process a child subreaper for the rest
// of its life, as the daemon is; the other exec tests run the same either
// way.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "exec/child_process.hpp"
#include "exec/orphan_reaper.hpp"

using framed::exec::RunOutcome;
using framed::exec::RunRequest;
using framed::exec::RunResult;
using namespace std::chrono_literals;

namespace {

RunRequest shell(const std::string& script, std::chrono::nanoseconds timeout = 10s) {
  RunRequest request;
  request.spawn.argv = {"/bin/sh", "-c", script, "sh"};
  request.spawn.env = {"PATH=/usr/bin:/bin"};
  request.timeout = timeout;
  request.kill_grace = 2s;
  return request;
}

// Running: not gone, and not a zombie.
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto paren = line.rfind(')');
  return paren != std::string::npos && line.substr(paren + 2, 1) != "Z";
}

std::vector<pid_t> pids_in(const std::string& text) {
  std::vector<pid_t> pids;
  std::istringstream in(text);
  for (pid_t pid = 0; in >> pid;) pids.push_back(pid);
  return pids;
}

bool no_children_left() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A directory with escape.sh: `escape.sh DIR LEVEL LAST` writes its pid to
// DIR/LEVEL, starts the next level in a new session (setsid) in the
// background until LAST, and becomes a 60 s sleep. The commands below wait
// for the last level's pid file before they go on: a command that exits
// before its escape has left the group would have it killed with the group.
class EscapeScript {
 public:
  EscapeScript() {
    REQUIRE(::mkdtemp(directory_) != nullptr);
    std::ofstream script(path("escape.sh"));
    script << "echo $$ > \"$1/$2\"\n"
              "if [ \"$2\" -lt \"$3\" ]; then setsid /bin/sh \"$0\" \"$1\" $(($2 + 1)) \"$3\" & fi\n"
              "exec /bin/sleep 60\n";
  }
  ~EscapeScript() {
    for (const char* name : {"escape.sh", "1", "2", "3", "term"}) std::remove(path(name).c_str());
    ::rmdir(directory_);
  }
  EscapeScript(const EscapeScript&) = delete;
  EscapeScript& operator=(const EscapeScript&) = delete;

  [[nodiscard]] std::string path(const std::string& name) const { return std::string(directory_) + "/" + name; }
  // Shell words: start the escape (levels 1 to `last`) with these redirections.
  [[nodiscard]] std::string start(int last, const std::string& redirections) const {
    return "setsid /bin/sh " + path("escape.sh") + " " + directory_ + " 1 " + std::to_string(last) + " " +
           redirections + " &";
  }
  // Shell words: wait until level `last` has written its pid, then print them all.
  [[nodiscard]] std::string await(int last) const {
    std::string words = "until [ -s " + path(std::to_string(last)) + " ]; do sleep 0.01; done; cat";
    for (int level = 1; level <= last; ++level) words += " " + path(std::to_string(level));
    return words;
  }

 private:
  char directory_[32] = "/tmp/framed-orphans-XXXXXX";
};

}  // namespace

TEST_CASE("orphan containment: what escapes the process group ends with the run", "[exec][orphans]") {
  REQUIRE(framed::exec::contain_orphans() == 0);
  REQUIRE(framed::exec::containing_orphans());
  const std::uint64_t killed_before = framed::exec::orphans_killed();

  const EscapeScript escape;

  SECTION("setsid: a new session, so outside the group the timeout and the exit kill") {
    const RunResult result = run_child(shell(escape.start(1, "</dev/null >/dev/null 2>&1") + escape.await(1)));
    REQUIRE(result.outcome == RunOutcome::finished);
    const std::vector<pid_t> pids = pids_in(result.out.bytes);
    REQUIRE(pids.size() == 1);
    CHECK_FALSE(running(pids[0]));
    CHECK(framed::exec::orphans_killed() >= killed_before + 1);
  }

  SECTION("a double fork into a new session, holding stdout: the run ends when its first process does") {
    // Without containment the run would wait for the escaped sleep's end of
    // the pipe until its timeout; with it, the sleep is killed at the exit.
    const RunResult result = run_child(shell("(" + escape.start(1, "") + "); " + escape.await(1) + "; exit 0", 30s));
    REQUIRE(result.outcome == RunOutcome::finished);
    CHECK(result.exit_code == 0);
    CHECK(result.elapsed < 15s);
    const std::vector<pid_t> pids = pids_in(result.out.bytes);
    REQUIRE(pids.size() == 1);
    CHECK_FALSE(running(pids[0]));
  }

  SECTION("a chain of escapes, each in a new session, each the parent of the next: all of it") {
    const RunResult result = run_child(shell(escape.start(3, "</dev/null") + escape.await(3)));
    REQUIRE(result.outcome == RunOutcome::finished);
    const std::vector<pid_t> pids = pids_in(result.out.bytes);
    REQUIRE(pids.size() == 3);
    for (const pid_t pid : pids) CHECK_FALSE(running(pid));
  }

  SECTION("a timeout sends SIGTERM to the escaped processes too, while the first process lives") {
    const std::string marker = escape.path("term");
    const std::string pid_file = escape.path("1");
    const RunResult result = run_child(shell(
        "setsid sh -c 'trap \"echo term > " + marker + "; exit 0\" TERM; echo $$ > " + pid_file +
            "; while :; do sleep 0.05; done' </dev/null >/dev/null 2>&1 & " + escape.await(1) +
            // The first process ignores SIGTERM (so lives until the SIGKILL
            // after kill_grace), set after the escape started: ignored signals
            // are inherited, and sh cannot trap a signal ignored at its start.
            "; trap '' TERM; /bin/sleep 60",
        500ms));
    REQUIRE(result.outcome == RunOutcome::timed_out);
    CHECK(read_file(marker) == "term\n");
    const std::vector<pid_t> pids = pids_in(result.out.bytes);
    REQUIRE(pids.size() == 1);
    CHECK_FALSE(running(pids[0]));
  }

  SECTION("runs on many threads at once keep their own first processes") {
    std::vector<std::thread> threads;
    std::vector<RunResult> results(8);
    for (std::size_t i = 0; i < results.size(); ++i) {
      threads.emplace_back([&results, i] {
        // No pid file to wait for: some escapes die with the group, the
        // others as orphans; every first process must finish untouched.
        results[i] = run_child(shell("setsid /bin/sleep 60 </dev/null >/dev/null 2>&1 & /bin/sleep 0.2; echo done"));
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (const RunResult& result : results) {
      CHECK(result.outcome == RunOutcome::finished);
      CHECK(result.exit_code == 0);
      CHECK(result.out.bytes == "done\n");
    }
  }

  CHECK(framed::exec::reap_orphans() == 0);
  CHECK(no_children_left());
}
