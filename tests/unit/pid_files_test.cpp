// Tests for lib/exec/pid_files: the pid lists the kernel writes, and the
// reading of small /proc files and directories.

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "exec/pid_files.hpp"

using framed::exec::directory_entries;
using framed::exec::parse_pid;
using framed::exec::parse_pid_list;
using framed::exec::read_small_file;

TEST_CASE("parse_pid takes a positive decimal pid and nothing else", "[exec][pid_files]") {
  CHECK(parse_pid("1") == 1);
  CHECK(parse_pid("4194304") == 4194304);
  CHECK_FALSE(parse_pid(""));
  CHECK_FALSE(parse_pid("0"));
  CHECK_FALSE(parse_pid("-5"));
  CHECK_FALSE(parse_pid("12a"));
  CHECK_FALSE(parse_pid(" 12"));
  CHECK_FALSE(parse_pid("99999999999999999999"));
}

TEST_CASE("parse_pid_list reads children files and cgroup.procs alike", "[exec][pid_files]") {
  using Pids = std::vector<pid_t>;
  CHECK(parse_pid_list("") == Pids{});
  CHECK(parse_pid_list("12 34 56 ") == Pids{12, 34, 56});     // /proc/PID/task/TID/children
  CHECK(parse_pid_list("12\n34\n56\n") == Pids{12, 34, 56});  // cgroup.procs
  CHECK(parse_pid_list("7") == Pids{7});
  CHECK(parse_pid_list("7 x 9\n") == Pids{7, 9});  // what is not a pid is skipped
}

TEST_CASE("read_small_file and directory_entries on /proc", "[exec][pid_files]") {
  const auto stat = read_small_file(AT_FDCWD, "/proc/self/stat");
  REQUIRE(stat);
  CHECK(stat->rfind(std::to_string(::getpid()) + " (", 0) == 0);
  CHECK_FALSE(read_small_file(AT_FDCWD, "/proc/self/no-such-file"));

  const std::vector<std::string> fds = directory_entries(AT_FDCWD, "/proc/self/fd");
  CHECK(std::find(fds.begin(), fds.end(), "0") != fds.end());
  CHECK(std::find(fds.begin(), fds.end(), ".") == fds.end());
  CHECK(directory_entries(AT_FDCWD, "/proc/self/no-such-directory").empty());
}
