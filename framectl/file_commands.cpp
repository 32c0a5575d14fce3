// put, get, list and delete. Files move in pieces (kChunk at a time),
// never whole, with SHA-256 checked on both ends.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string>

#include "base/errno_text.hpp"
#include "base/unique_fd.hpp"
#include "commands.hpp"
#include "digest/sha256.hpp"
#include "failure.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace framed::framectl {
namespace {

// One read of the local file, one send: large enough for full speed on
// loopback, small enough to keep framectl's memory flat.
constexpr std::size_t kChunk = 256 * 1024;

[[noreturn]] void fail_file(std::string_view what, const std::string& path, int error) {
  std::string message(what);
  message.append(" ");
  message.append(path);
  message.append(": ");
  message.append(base::errno_text(error));
  throw Failure(ExitStatus::local_file, "io", message);
}

// Reads `fd` to its end in kChunk pieces, handing each to `sink`, until
// the sink returns false.
template <typename Sink>
void read_file(int fd, const std::string& path, std::string& chunk, Sink&& sink) {
  chunk.resize(kChunk);
  while (true) {
    const ssize_t got = ::read(fd, chunk.data(), chunk.size());
    if (got == 0) return;
    if (got < 0) {
      if (errno == EINTR) continue;
      fail_file("cannot read", path, errno);
    }
    if (!sink(std::string_view(chunk.data(), static_cast<std::size_t>(got)))) return;
  }
}

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void check_digest(const std::string& expected, std::string_view reported, const std::string& what) {
  if (reported != expected) {
    std::string message = "SHA-256 of ";
    message.append(what);
    message.append(" is ");
    message.append(expected);
    message.append(" here but ");
    message.append(reported.empty() ? std::string_view("(none)") : reported);
    message.append(" at the daemon");
    throw Failure(ExitStatus::error_reply, "checksum", message);
  }
}

std::string iso_time(std::uint64_t seconds) {
  const auto value = static_cast<std::time_t>(seconds);
  std::tm parts{};
  ::gmtime_r(&value, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

}  // namespace

int run_put(const Session& session, const std::string& file, std::string name) {
  session.require_json_framing("put");
  if (name.empty()) name = base_name(file);
  base::UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail_file("cannot open", file, errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) fail_file("cannot stat", file, errno);
  if (!S_ISREG(info.st_mode)) fail_usage(concat("put sends a regular file: ", file, " is not one"));
  const auto size = static_cast<std::uint64_t>(info.st_size);

  // The header, sha256 included, goes before the body: so the file is
  // hashed first, in pieces, then sent (and hashed again on the way, to
  // tell a file that changed meanwhile from a transfer that went wrong).
  std::string chunk;
  digest::Sha256 before;
  read_file(fd.get(), file, chunk, [&before](std::string_view piece) {
    before.update(piece);
    return true;
  });
  const std::string expected = before.hex_digest();
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) fail_file("cannot rewind", file, errno);

  JsonRequest request("put");
  request.field("name", std::string_view(name)).field("sha256", std::string_view(expected));
  auto connection = session.connect();
  bool sending = connection->send_all(request.head(size));
  digest::Sha256 during;
  std::uint64_t sent = 0;
  {
    Progress progress(concat("put ", name), size);
    read_file(fd.get(), file, chunk, [&](std::string_view piece) {
      // A daemon that stopped taking the body (it refused the put and
      // closed) has its reason in the reply read below.
      if (!sending) return false;
      // A file that grew since fstat is sent as it was then: the header
      // announced `size` bytes.
      piece = piece.substr(0, static_cast<std::size_t>(size - sent));
      during.update(piece);
      sending = connection->send_all(piece);
      sent += piece.size();
      progress.advance(piece.size());
      return sending && sent < size;
    });
    if (sending && sent == size) progress.finish();
  }
  ReplyHead head;
  connection->read_head(head);
  connection->read_body_string(kMaxHeldBody);
  if (!head.ok()) {
    if (sent == size && during.hex_digest() != expected) {
      throw Failure(ExitStatus::local_file, "io", concat(file, " changed while it was sent; the daemon refused it"));
    }
    session.check_ok(head);
  }
  if (sent != size) {
    throw Failure(ExitStatus::local_file, "io", concat(file, " shrank while it was sent"));
  }
  check_digest(expected, head.string_field("sha256").value_or(""), file);
  if (session.json()) write_stdout(json_line(head));
  return 0;
}

int run_get(const Session& session, const std::string& name, const std::string& file, bool resume) {
  session.require_json_framing("get");
  if (resume && file.empty()) fail_usage("get --continue needs FILE, the partial download to continue");
  if (session.json() && file.empty()) fail_usage("get --json needs FILE: stdout carries the JSON reply");

  // --continue: what is already here is hashed, and only the rest asked for.
  std::uint64_t offset = 0;
  digest::Sha256 sha256;
  std::string chunk;
  base::UniqueFd out;
  if (resume) {
    out.reset(::open(file.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
    if (!out && errno != ENOENT) fail_file("cannot open", file, errno);
    if (out) {
      read_file(out.get(), file, chunk, [&](std::string_view piece) {
        sha256.update(piece);
        offset += piece.size();
        return true;
      });
    }
  }

  JsonRequest request("get");
  request.field("name", std::string_view(name));
  if (offset > 0) request.field("offset", offset);
  auto connection = session.connect();
  connection->send_all(request.head(0));
  ReplyHead head;
  connection->read_head(head);
  if (!head.ok()) {
    connection->read_body_string(kMaxHeldBody);
    session.check_ok(head);
  }
  // Opened only now: a refused get leaves an existing FILE untouched.
  if (!file.empty() && !out) {
    out.reset(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
    if (!out) fail_file("cannot create", file, errno);
  }
  const int out_fd = out ? out.get() : STDOUT_FILENO;
  const std::string out_name = file.empty() ? std::string("stdout") : file;
  const std::uint64_t size = head.uint_field("size").value_or(offset + head.body_size());
  {
    Progress progress(concat("get ", name), size, offset);
    connection->read_body([&](std::string_view piece) {
      sha256.update(piece);
      write_all(out_fd, piece, out_name);
      progress.advance(piece.size());
    });
    progress.finish();
  }
  if (out && ::fsync(out.get()) != 0 && errno != EINVAL) fail_file("cannot write", file, errno);
  check_digest(sha256.hex_digest(), head.string_field("sha256").value_or(""), out_name);
  if (session.json()) write_stdout(json_line(head));
  return 0;
}

int run_list(const Session& session, const std::string& prefix) {
  session.require_json_framing("list");
  JsonRequest request("list");
  if (!prefix.empty()) request.field("prefix", std::string_view(prefix));
  const auto answer = session.request(request);
  simdjson::dom::parser parser;
  simdjson::dom::array files;
  const bool parsed = answer->head.ok() && parser.parse(answer->body).get_array().get(files) == simdjson::SUCCESS;
  std::string members = ",\"body\":";
  members.append(parsed ? simdjson::minify(files) : std::string("[]"));
  session.check_ok(answer->head, members);
  if (!parsed) throw Failure(ExitStatus::connection, "protocol", "the list body is not a JSON array");
  if (session.json()) {
    write_stdout(json_line(answer->head, members));
    return 0;
  }
  std::string text;
  for (const auto entry : files) {
    std::string_view file_name;
    std::uint64_t size = 0;
    std::uint64_t mtime = 0;
    if (entry["name"].get_string().get(file_name) != simdjson::SUCCESS) continue;
    if (entry["size"].get_uint64().get(size) != simdjson::SUCCESS) continue;
    if (entry["mtime"].get_uint64().get(mtime) != simdjson::SUCCESS) continue;
    char line_head[64];
    std::snprintf(line_head, sizeof line_head, "%12llu  %s  ", static_cast<unsigned long long>(size),
                  iso_time(mtime).c_str());
    text.append(line_head);
    text.append(file_name);
    text.push_back('\n');
  }
  write_stdout(text);
  return 0;
}

int run_delete(const Session& session, const std::string& name) {
  session.require_json_framing("delete");
  JsonRequest request("delete");
  request.field("name", std::string_view(name));
  const auto answer = session.request(request);
  session.check_ok(answer->head);
  if (session.json()) write_stdout(json_line(answer->head));
  return 0;
}

}  // namespace framed::framectl
