// files::check_file_name: what a client's file name may be (PROTOCOL.md
// section 4: relative, '/'-separated, beneath the root).

#include <catch2/catch.hpp>

#include <string>

#include "files/file_name.hpp"

using framed::files::check_file_name;
using framed::files::check_prefix;
using framed::files::CheckedName;
using framed::proto::ErrorCode;

namespace {

// "ok", or the error code's name.
std::string verdict(const std::string& name, bool allow_subdirs) {
  const auto error = check_file_name(name, allow_subdirs);
  if (!error) return "ok";
  REQUIRE_FALSE(error->message.empty());
  return std::string(framed::proto::to_string(error->code));
}

}  // namespace

TEST_CASE("file names: what is accepted", "[files]") {
  for (const bool subdirs : {false, true}) {
    CHECK(verdict("a", subdirs) == "ok");
    CHECK(verdict("report.pdf", subdirs) == "ok");
    CHECK(verdict(".hidden", subdirs) == "ok");
    CHECK(verdict("..dots..", subdirs) == "ok");
    CHECK(verdict("with space and \\ backslash", subdirs) == "ok");
    CHECK(verdict(std::string(255, 'x'), subdirs) == "ok");
    CHECK(verdict("caf\xc3\xa9", subdirs) == "ok");
  }
  CHECK(verdict("a/b/c.txt", true) == "ok");
}

TEST_CASE("file names: escapes are forbidden", "[files]") {
  for (const bool subdirs : {false, true}) {
    CHECK(verdict("..", subdirs) == "forbidden");
    CHECK(verdict("../x", subdirs) == "forbidden");
    CHECK(verdict("/etc/passwd", subdirs) == "forbidden");
    CHECK(verdict("/", subdirs) == "forbidden");
    CHECK(verdict("a/../../x", subdirs) == "forbidden");
    CHECK(verdict("a/..", subdirs) == "forbidden");
    // Escaping wins over being malformed.
    CHECK(verdict("a//../x", subdirs) == "forbidden");
  }
  CHECK(verdict("a/b", false) == "forbidden");
  CHECK(verdict("a/", false) == "forbidden");
}

TEST_CASE("file names: malformed ones are bad requests", "[files]") {
  for (const bool subdirs : {false, true}) {
    CHECK(verdict("", subdirs) == "bad_request");
    CHECK(verdict(std::string("a\0b", 3), subdirs) == "bad_request");
    CHECK(verdict(std::string("../\0", 4), subdirs) == "bad_request");  // NUL first: C strings would cut it
    CHECK(verdict(".", subdirs) == "bad_request");
    CHECK(verdict(std::string(256, 'x'), subdirs) == "bad_request");
    CHECK(verdict(std::string(5000, 'x'), subdirs) == "bad_request");
    CHECK(verdict(".framed-0123.tmp", subdirs) == "bad_request");
  }
  CHECK(verdict("a//b", true) == "bad_request");
  CHECK(verdict("a/", true) == "bad_request");
  CHECK(verdict("a/./b", true) == "bad_request");
  CHECK(verdict("a/.framed-x/b", true) == "bad_request");
  CHECK(verdict("a/" + std::string(256, 'x'), true) == "bad_request");
}

TEST_CASE("file names: split into directories and leaf", "[files]") {
  CheckedName name;
  REQUIRE_FALSE(check_file_name("a/b/c.txt", true, &name));
  CHECK(name.directories == std::vector<std::string>{"a", "b"});
  CHECK(name.leaf == "c.txt");
  REQUIRE_FALSE(check_file_name("top", false, &name));
  CHECK(name.directories.empty());
  CHECK(name.leaf == "top");
}

TEST_CASE("list prefixes", "[files]") {
  CHECK_FALSE(check_prefix(""));
  CHECK_FALSE(check_prefix("a/b"));
  CHECK_FALSE(check_prefix("../"));  // a prefix filters names already beneath the root
  REQUIRE(check_prefix(std::string("a\0", 2)));
  CHECK(check_prefix(std::string("a\0", 2))->code == ErrorCode::bad_request);
  CHECK(check_prefix(std::string(5000, 'x')));
}
