// get: a file, or a byte range of it, streamed from disk (PROTOCOL.md
// section 4).
//
// A worker opens the file beneath the root and hashes the whole of it (the
// reply's header carries its sha256 before any byte of the body). The open
// descriptor keeps that very file: a put renames a new file over the name,
// it never writes into this one, so the bytes sent are those hashed — the old
// file or the new one, whole. Small ranges come back in the reply itself;
// larger ones through a FileSource that reads ahead in the worker pool into
// at most kReadAhead chunks, so a reader that does not read never makes the
// daemon hold more than that.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <string>
#include <utility>

#include "commands/file_commands.hpp"
#include "commands/file_stats.hpp"
#include "exec/worker_pool.hpp"
#include "files/beneath.hpp"

namespace framed::commands {
namespace {

constexpr std::size_t kReadChunk = 256 << 10;
constexpr std::size_t kReadAhead = 2;              // chunks ready or being read
constexpr std::uint64_t kInlineBody = 64 << 10;    // ranges up to this size are sent whole

// Worker: `size` bytes at `offset` (short only at the end of the file).
bool read_at(int fd, std::uint64_t offset, std::string& into, std::size_t size, int& error) {
  into.resize(size);
  std::size_t filled = 0;
  while (filled < size) {
    const ssize_t n = ::pread(fd, into.data() + filled, size - filled, static_cast<off_t>(offset + filled));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = errno;
      return false;
    }
    if (n == 0) {
      error = EIO;  // the file shrank under us: its hash no longer holds
      return false;
    }
    filled += static_cast<std::size_t>(n);
  }
  return true;
}

// The reader's state, shared with the read in flight.
struct Download {
  Download(CommandHost& host_in, ReplyRoute route_in, base::UniqueFd file_in, std::uint64_t offset,
           std::uint64_t length)
      : host(host_in), route(route_in), file(std::move(file_in)), next_offset(offset), unrequested(length) {}

  CommandHost& host;
  const ReplyRoute route;
  const base::UniqueFd file;
  std::uint64_t next_offset;  // where the next read starts
  std::uint64_t unrequested;  // bytes of the range no read has asked for yet
  std::deque<std::string> ready;
  std::size_t ready_offset = 0;  // bytes of ready.front() already sent
  std::string spare;
  bool in_flight = false;
  bool failed = false;
  bool closed = false;  // the source is gone (the reply was sent or dropped)
};

using DownloadPtr = std::shared_ptr<Download>;

void read_ahead(const DownloadPtr& download);

void on_read(const DownloadPtr& download, std::string chunk, bool ok) {
  download->in_flight = false;
  if (download->closed) return;
  if (!ok) {
    download->failed = true;
  } else {
    download->ready.push_back(std::move(chunk));
    read_ahead(download);
  }
  download->host.resume_body(download->route);
}

// Reactor: the next chunk, when there is room for it.
void read_ahead(const DownloadPtr& download) {
  if (download->in_flight || download->failed || download->unrequested == 0 ||
      download->ready.size() >= kReadAhead) {
    return;
  }
  const auto size = static_cast<std::size_t>(std::min<std::uint64_t>(download->unrequested, kReadChunk));
  const std::uint64_t offset = download->next_offset;
  auto job = [download, offset, size, chunk = std::move(download->spare)]() mutable {
    int error = 0;
    const bool ok = read_at(download->file.get(), offset, chunk, size, error);
    download->host.post([download, chunk = std::move(chunk), ok]() mutable { on_read(download, std::move(chunk), ok); });
  };
  download->spare.clear();
  if (!download->host.worker_pool().try_submit(std::move(job))) {
    // Nothing else will resume this reply: it ends here (the connection
    // closes after what was sent), unless chunks already read carry it on
    // and the next call tries again.
    if (download->ready.empty()) download->failed = true;
    return;
  }
  download->in_flight = true;
  download->next_offset += size;
  download->unrequested -= size;
}

class FileSource final : public proto::BodySource {
 public:
  FileSource(DownloadPtr download, std::uint64_t size) : download_(std::move(download)), size_(size) {
    read_ahead(download_);
  }
  ~FileSource() override { download_->closed = true; }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  std::uint64_t size() const noexcept override { return size_; }

  Read read(std::span<char> into) override {
    Download& d = *download_;
    if (d.ready.empty()) {
      if (d.failed) return {Status::failed, 0};
      read_ahead(download_);
      return {d.failed ? Status::failed : Status::pending, 0};
    }
    std::string& front = d.ready.front();
    const std::size_t n = std::min(into.size(), front.size() - d.ready_offset);
    std::memcpy(into.data(), front.data() + d.ready_offset, n);
    d.ready_offset += n;
    d.host.file_stats().bytes_out += n;
    if (d.ready_offset == front.size()) {
      d.spare = std::move(front);
      d.ready.pop_front();
      d.ready_offset = 0;
      read_ahead(download_);
    }
    return {Status::data, n};
  }

 private:
  DownloadPtr download_;
  std::uint64_t size_;
};

struct GetRequest {
  FileSettings settings;
  files::CheckedName name;
  std::optional<std::uint64_t> offset;
  std::optional<std::uint64_t> length;
};

// What the worker found: the answer, and the file to stream when the range
// is too large to send inline.
struct GetResult {
  std::optional<FileError> failure;
  std::string sha256;
  std::uint64_t size = 0;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::string inline_body;
  base::UniqueFd file;  // set: stream [offset, offset + length) from it
};

// Worker.
GetResult open_and_hash(const GetRequest& request) {
  GetResult result;
  const auto fail = [&](int error) {
    result.failure = file_error(error, request.name);
    return std::move(result);
  };
  int error = 0;
  const base::UniqueFd root = open_root(request.settings.root, error);
  if (!root) return fail(error);
  base::UniqueFd file = files::open_beneath(root.get(), request.name, O_RDONLY, error);
  if (!file) return fail(error);
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) return fail(errno);
  if (S_ISDIR(st.st_mode)) return fail(EISDIR);
  if (!S_ISREG(st.st_mode)) {
    result.failure = FileError{proto::ErrorCode::bad_request,
                               quote_client_name(files::joined(request.name)) + " is not a regular file"};
    return result;
  }
  result.size = static_cast<std::uint64_t>(st.st_size);
  result.offset = request.offset.value_or(0);
  if (result.offset > result.size) {
    result.failure = FileError{proto::ErrorCode::bad_request, "get: offset " + std::to_string(result.offset) +
                                                                  " is past the end of the file (" +
                                                                  std::to_string(result.size) + " bytes)"};
    return result;
  }
  result.length = std::min(request.length.value_or(result.size - result.offset), result.size - result.offset);

  Sha256 sha256;
  std::string chunk;
  for (std::uint64_t at = 0; at < result.size;) {
    const auto size = static_cast<std::size_t>(std::min<std::uint64_t>(result.size - at, 1 << 20));
    if (!read_at(file.get(), at, chunk, size, error)) return fail(error);
    sha256.update(chunk);
    at += size;
  }
  result.sha256 = sha256.hex_digest();
  if (result.length <= kInlineBody) {
    if (!read_at(file.get(), result.offset, result.inline_body, static_cast<std::size_t>(result.length), error)) {
      return fail(error);
    }
  } else {
    result.file = std::move(file);
  }
  return result;
}

void answer(CommandHost& host, const ReplyRoute& route, GetResult& result) {
  proto::Reply reply;
  if (result.failure) {
    reply.fail(result.failure->code, result.failure->message);
    return host.deliver_reply(route, reply);
  }
  reply.add_field("sha256", std::string_view(result.sha256));
  reply.add_field("size", result.size);
  if (result.offset != 0) reply.add_field("offset", result.offset);
  if (result.file) {
    auto download = std::make_shared<Download>(host, route, std::move(result.file), result.offset, result.length);
    reply.body_source = std::make_unique<FileSource>(std::move(download), result.length);
  } else {
    reply.body_storage = std::move(result.inline_body);
    reply.use_storage_as_body();
    host.file_stats().bytes_out += reply.body_storage.size();
  }
  host.deliver_reply(route, reply);
}

class Get final : public Command {
 public:
  std::string_view name() const noexcept override { return "get"; }
  Permission permission() const noexcept override { return Permission::read_files; }
  std::string_view summary() const noexcept override {
    return "sends file \"name\" (optional \"offset\", \"length\": a byte range); reply: sha256 of the whole file, size";
  }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) override {
    auto settings = file_settings(context, reply);
    if (!settings) return;
    GetRequest get{std::move(*settings), {}, {}, {}};
    if (!read_file_name(request, get.settings, "get", get.name, reply)) return;
    if (!read_optional_u64(request, "offset", get.offset, reply)) return;
    if (!read_optional_u64(request, "length", get.length, reply)) return;
    CommandHost& host = context.host;
    auto job = [&host, route = context.route, get = std::move(get)]() {
      // Shared: a posted function must be copyable, and the result holds a descriptor.
      auto result = std::make_shared<GetResult>(open_and_hash(get));
      host.post([&host, route, result] { answer(host, route, *result); });
    };
    if (!submit_file_job(host, "get", std::move(job), reply)) return;
    [[maybe_unused]] const ReplyRoute deferred = context.defer();
  }
};

}  // namespace

std::unique_ptr<Command> make_get_command() { return std::make_unique<Get>(); }

}  // namespace framed::commands
