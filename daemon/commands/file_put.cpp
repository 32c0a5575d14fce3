// put: a file streamed from the request body to disk (PROTOCOL.md section 4).
//
// The body goes into fixed-size buffers on the reactor thread. Each full
// buffer goes through two worker-side stages, in order: hashing (SHA-256),
// then writing to a temporary file that has no name under the root
// (O_TMPFILE); then it is handed back. The reactor fills buffers while the
// hashing stage works on a later one and the writing stage on an earlier
// one, so receiving, hashing and writing overlap. Each stage is one job at
// a time that drains its queue while there is more, so an upload costs at
// most two workers, not a job per buffer, and owns at most kBuffers
// buffers, whatever its size. When all are in the stages, write() takes
// fewer bytes than offered, so the connection stops reading and a slow disk
// slows the sender; a buffer handed back resumes the body. When the body is
// complete and both stages are idle, the end job checks the hash, fsyncs
// (files.fsync), links the file under a reserved temporary name and renames
// it over the name: a reader sees the old file or the new one, whole. An
// upload that fails or is abandoned has never had a name: closing its
// descriptor frees it.
//
// Resuming: an upload abandoned half way (the client went away, the body
// missed body_timeout, the connection was cut at shutdown) is kept in the
// process-wide PartialUploads table for files.resume_window: its descriptor,
// its size and its SHA-256 state, so a put with "offset" equal to that size
// appends the rest and answers the whole file's hash without reading the
// kept bytes again. An upload that failed for a reason the client was told
// (sha256 mismatch: the bytes are wrong; a disk error; too_busy) is not
// kept. The table is touched from this file's reactor side (claim) and from
// the end of an abandoned upload, in a worker (park); it does no I/O under
// its mutex.
//
// Ownership: an Upload is shared by the sink, its stages' jobs and every
// buffer handed back; each holds it, so a sink destroyed meanwhile (the
// client went away, or finish() returned) never leaves a job pointing at
// nothing.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "commands/file_commands.hpp"
#include "commands/file_stats.hpp"
#include "commands/partial_uploads.hpp"
#include "exec/worker_pool.hpp"
#include "files/beneath.hpp"

namespace framed::commands {
namespace {

// Bytes per buffer, and buffers per upload: kBuffers * kChunk (2 MiB) is
// what an upload holds in memory at most. A quarter MiB is hashed and then
// written while it is still in the CPU's cache (a 1 MiB buffer measured
// slower here); eight let the reactor fill some while the stages work on
// others, with room for the jitter of a shared CPU and of the page cache.
constexpr std::size_t kChunk = 256 << 10;
constexpr std::size_t kBuffers = 8;

// One buffer of the body: filled on the reactor, hashed, written, handed
// back for reuse.
struct Chunk {
  std::string bytes;  // kChunk long, or empty: no buffer (none was free)
  std::size_t size = 0;  // how much of it is the body's

  [[nodiscard]] std::string_view view() const noexcept { return {bytes.data(), size}; }
};

// What is done once every buffer is hashed and written.
enum class Ending : std::uint8_t {
  open,     // the body goes on: wait for the reactor to queue more
  commit,   // the body is complete: check, link, rename, answer
  abandon,  // the sink is gone: keep what was written for resuming, or drop it
};

// A worker-side stage a buffer goes through (hashing, then writing): its
// queue, in order, and whether a job is draining it. One job at a time per
// stage; the two stages run at once on different buffers.
struct Stage {
  std::deque<Chunk> queued;
  bool running = false;
};

struct Upload {
  Upload(CommandHost& host_in, FileSettings settings_in, files::CheckedName name_in)
      : host(host_in), partials(host_in.partial_uploads()), settings(std::move(settings_in)), name(std::move(name_in)) {}

  CommandHost& host;
  PartialUploads& partials;  // process-wide and thread-safe: the job parks a cut upload there
  const FileSettings settings;
  const files::CheckedName name;
  std::optional<std::string> expected_sha256;
  ReplyRoute route;

  // Worker side. The hashing stage alone touches sha256 and the writing
  // stage alone the rest, until both are idle with the body ended: then the
  // end (commit or keep) has them all. The reactor reads them only after
  // the end's post.
  Sha256 sha256;
  base::UniqueFd directory;
  base::UniqueFd file;  // O_TMPFILE: no name until the commit (a resumed upload's from the start)
  std::uint64_t written = 0;  // a resumed upload: from its offset on
  std::optional<FileError> failure;

  // Between the reactor and the stages, under `mutex` (held for a few
  // pointer moves, never across I/O).
  std::mutex mutex;
  Stage hashing;
  Stage writing;
  Ending ending = Ending::open;
  bool ended = false;                 // the end is under way
  std::optional<FileError> refusal;  // the pool refused a stage: too_busy, told at the end

  // Reactor side.
  Chunk filling;
  std::vector<Chunk> spares;  // handed back, for reuse
  std::size_t out = 0;        // buffers in the stages
  std::optional<FileError> reactor_failure;  // a write failed, or the pool refused a stage
  bool behind = false;
  bool abandoned = false;
  bool finishing = false;
};

using UploadPtr = std::shared_ptr<Upload>;

// Worker: the directory the name goes in and the temporary file, on the
// first write. A resumed upload has its file; its directory is looked up
// again (it may have been renamed meanwhile).
bool open_temporary(Upload& upload) {
  if (upload.file && upload.directory) return true;
  int error = 0;
  const base::UniqueFd root = open_root(upload.settings.root, error);
  if (root) upload.directory = files::open_parent_beneath(root.get(), upload.name, upload.settings.allow_subdirs, error);
  if (upload.directory && !upload.file) {
    upload.file.reset(::openat(upload.directory.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644));
    if (!upload.file) error = errno;
  }
  if (upload.file && upload.directory) return true;
  upload.failure = file_error(error, upload.name);
  return false;
}

// Worker (writing stage): writes one buffer.
void write_chunk(Upload& upload, std::string_view bytes) {
  if (upload.failure || !open_temporary(upload)) return;
  while (!bytes.empty()) {
    const ssize_t n = ::write(upload.file.get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      upload.failure = file_error(errno, upload.name);
      return;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    upload.written += static_cast<std::uint64_t>(n);
  }
}

std::string temporary_name() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name(files::kReservedPrefix);
  for (std::uint64_t bits = random(), i = 0; i < 16; ++i, bits >>= 4) name.push_back(kHex[bits & 0xF]);
  name.append(".tmp");
  return name;
}

// Worker: the complete file becomes visible under its name. Returns the
// whole file's hex SHA-256, or sets failure.
std::string commit(Upload& upload) {
  if (upload.failure || !open_temporary(upload)) return {};
  std::string digest = upload.sha256.hex_digest();
  if (upload.expected_sha256 && *upload.expected_sha256 != digest) {
    upload.failure = FileError{proto::ErrorCode::bad_request,
                               "sha256 mismatch: the body hashes to " + digest + ", the header said " +
                                   *upload.expected_sha256 + "; nothing was stored"};
    return {};
  }
  const auto fail = [&upload](int error) {
    upload.failure = file_error(error, upload.name);
    return std::string();
  };
  if (upload.settings.fsync && ::fsync(upload.file.get()) != 0) return fail(errno);
  // linkat cannot replace a name: link under a reserved one, then rename
  // over the target, which is atomic.
  const std::string proc_path = "/proc/self/fd/" + std::to_string(upload.file.get());
  std::string temporary = temporary_name();
  if (::linkat(AT_FDCWD, proc_path.c_str(), upload.directory.get(), temporary.c_str(), AT_SYMLINK_FOLLOW) != 0) {
    return fail(errno);
  }
  if (::renameat(upload.directory.get(), temporary.c_str(), upload.directory.get(), upload.name.leaf.c_str()) != 0) {
    const int error = errno;
    ::unlinkat(upload.directory.get(), temporary.c_str(), 0);
    return fail(error);
  }
  if (upload.settings.fsync) {
    const base::UniqueFd directory(::openat(upload.directory.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!directory || ::fsync(directory.get()) != 0) return fail(errno);
  }
  return digest;
}

// Worker: an abandoned upload that failed for no reason of its own is kept
// for resuming (everything it had taken is written by now).
void keep_partial(Upload& upload) {
  if (upload.failure || !upload.file || upload.written == 0) return;
  PartialUpload partial;
  partial.root = upload.settings.root;
  partial.name = files::joined(upload.name);
  partial.file = std::move(upload.file);
  partial.sha256 = std::move(upload.sha256);
  partial.size = upload.written;
  partial.kept_at_unix = static_cast<std::int64_t>(std::time(nullptr));
  const PartialPolicy policy{upload.settings.resume_window, upload.settings.max_partials};
  // What leaves the table is closed here, in this worker.
  PartialUploads::Released released = upload.partials.park(std::move(partial), policy, base::Clock::now());
  CommandHost& host = upload.host;
  host.post([&host] { host.expire_partial_uploads_on_time(); });
}

void deliver(const UploadPtr& upload, const std::string& digest) {
  proto::Reply reply;
  if (upload->failure) {
    ++upload->host.file_stats().uploads_aborted;
    reply.fail(upload->failure->code, upload->failure->message);
  } else {
    ++upload->host.file_stats().files_committed;
    reply.add_field("sha256", std::string_view(digest));
    reply.add_field("size", upload->written);
  }
  upload->host.deliver_reply(upload->route, reply);
}

void on_written(const UploadPtr& upload, Chunk chunk, std::optional<FileError> failure);

// Worker: the end of the upload, every buffer hashed and written.
void end_upload(const UploadPtr& upload, Ending ending) {
  if (ending == Ending::commit) {
    std::string digest = commit(*upload);
    upload->host.post([upload, digest = std::move(digest)] { deliver(upload, digest); });
  } else {
    keep_partial(*upload);
  }
  // Closed here, not wherever the last holder lets go: closing a large
  // unlinked file frees its blocks, which may take a while.
  upload->file.reset();
  upload->directory.reset();
}

// Under the mutex: whether the end falls to the caller now (the body has
// ended, both stages are idle and empty, and nobody has taken it yet).
bool take_end(Upload& upload) {
  if (upload.ending == Ending::open || upload.ended || upload.hashing.running || upload.writing.running ||
      !upload.hashing.queued.empty() || !upload.writing.queued.empty()) {
    return false;
  }
  upload.ended = true;
  // Both stages are idle: the worker side is the caller's.
  if (!upload.failure && upload.refusal) upload.failure = std::move(upload.refusal);
  return true;
}

// Worker: pops the stage's next buffer; none: the stage goes idle, and if
// the end falls to it, `end` says so.
Chunk next_chunk(Upload& upload, Stage& stage, std::optional<Ending>& end) {
  const std::lock_guard lock(upload.mutex);
  if (stage.queued.empty()) {
    stage.running = false;
    if (take_end(upload)) end = upload.ending;
    return {};
  }
  Chunk chunk = std::move(stage.queued.front());
  stage.queued.pop_front();
  return chunk;
}

// Worker: the writing stage. Writes its queue in order, handing each buffer
// back to the reactor.
void write_stage(const UploadPtr& upload) {
  for (;;) {
    std::optional<Ending> end;
    Chunk chunk = next_chunk(*upload, upload->writing, end);
    if (chunk.bytes.empty()) {
      if (end) end_upload(upload, *end);
      return;
    }
    write_chunk(*upload, chunk.view());
    upload->host.post([upload, chunk = std::move(chunk), failure = upload->failure]() mutable {
      on_written(upload, std::move(chunk), std::move(failure));
    });
  }
}

// Worker: the hashing stage. Hashes its queue in order and passes each
// buffer to the writing stage, starting it when idle (or writing here when
// the pool is full: slower, never wrong).
void hash_stage(const UploadPtr& upload) {
  for (;;) {
    std::optional<Ending> end;
    Chunk chunk = next_chunk(*upload, upload->hashing, end);
    if (chunk.bytes.empty()) {
      if (end) end_upload(upload, *end);
      return;
    }
    upload->sha256.update(chunk.view());
    bool start_writing = false;
    {
      const std::lock_guard lock(upload->mutex);
      upload->writing.queued.push_back(std::move(chunk));
      start_writing = !upload->writing.running;
      upload->writing.running = true;
    }
    if (start_writing && !upload->host.worker_pool().try_submit([upload] { write_stage(upload); })) {
      write_stage(upload);
    }
  }
}

// Reactor: queues the filled buffer (if it holds anything) for hashing,
// sets how the upload ends, and starts the hashing stage unless it runs (or
// the end, when nothing is left to hash or write). False: the pool is full
// (`refused` says so).
bool queue_filling(const UploadPtr& upload, Ending ending, proto::Reply& refused) {
  bool start_hashing = false;
  bool start_end = false;
  {
    const std::lock_guard lock(upload->mutex);
    if (upload->filling.size != 0) {
      upload->hashing.queued.push_back(std::move(upload->filling));
      ++upload->out;
    }
    upload->filling = Chunk{};
    if (ending != Ending::open) upload->ending = ending;
    start_hashing = !upload->hashing.running && !upload->hashing.queued.empty();
    upload->hashing.running = upload->hashing.running || start_hashing;
    start_end = !start_hashing && take_end(*upload);
  }
  if (start_hashing) {
    if (submit_file_job(upload->host, "put", [upload] { hash_stage(upload); }, refused)) return true;
    const std::lock_guard lock(upload->mutex);
    upload->hashing.running = false;
    upload->refusal.emplace(FileError{refused.error_code, refused.error_message});
    return false;
  }
  if (start_end) {
    auto job = [upload, ending = upload->ending] { end_upload(upload, ending); };
    if (submit_file_job(upload->host, "put", std::move(job), refused)) return true;
    const std::lock_guard lock(upload->mutex);
    upload->ended = false;
    upload->refusal.emplace(FileError{refused.error_code, refused.error_message});
    return false;
  }
  return true;
}

// Reactor: a buffer to fill, from those handed back or a new one while the
// upload owns fewer than kBuffers. False: all are in the stages.
bool take_buffer(Upload& upload) {
  if (!upload.spares.empty()) {
    upload.filling = std::move(upload.spares.back());
    upload.spares.pop_back();
    return true;
  }
  if (upload.out >= kBuffers) return false;
  upload.filling.bytes.resize(kChunk);
  return true;
}

// Reactor: a buffer is written; it is free again.
void on_written(const UploadPtr& upload, Chunk chunk, std::optional<FileError> failure) {
  --upload->out;
  chunk.size = 0;
  upload->spares.push_back(std::move(chunk));
  if (failure && !upload->reactor_failure) upload->reactor_failure = std::move(failure);
  if (upload->behind && !upload->abandoned) {
    upload->behind = false;
    upload->host.resume_body(upload->route);
  }
}

class PutSink final : public BodySink {
 public:
  explicit PutSink(UploadPtr upload) : upload_(std::move(upload)) {}
  ~PutSink() override {
    if (upload_->finishing) return;  // the job owns it now
    // Abandoned: what was taken is written, then kept for resuming (a job
    // the pool refuses keeps nothing).
    ++upload_->host.file_stats().uploads_aborted;
    upload_->abandoned = true;
    if (upload_->reactor_failure) upload_->filling = Chunk{};
    proto::Reply refused;
    (void)queue_filling(upload_, Ending::abandon, refused);
  }
  PutSink(const PutSink&) = delete;
  PutSink& operator=(const PutSink&) = delete;

  std::size_t write(std::string_view bytes) override {
    Upload& upload = *upload_;
    // A failed upload takes the rest of the body unread: it is answered at
    // its end, with the reason.
    if (upload.reactor_failure) return bytes.size();
    std::size_t taken = 0;
    while (taken < bytes.size()) {
      if (upload.filling.bytes.empty() && !take_buffer(upload)) break;
      const std::size_t n = std::min(kChunk - upload.filling.size, bytes.size() - taken);
      std::memcpy(upload.filling.bytes.data() + upload.filling.size, bytes.data() + taken, n);
      upload.filling.size += n;
      taken += n;
      if (upload.filling.size == kChunk) {
        proto::Reply refused;
        if (!queue_filling(upload_, Ending::open, refused)) {
          upload.reactor_failure = FileError{refused.error_code, refused.error_message};
          return bytes.size();
        }
      }
    }
    upload.host.file_stats().bytes_in += taken;
    upload.behind = taken < bytes.size();
    return taken;
  }

  void finish(proto::Reply& reply, CommandContext& context) override {
    Upload& upload = *upload_;
    if (upload.reactor_failure) return reply.fail(upload.reactor_failure->code, upload.reactor_failure->message);
    proto::Reply refused;
    if (!queue_filling(upload_, Ending::commit, refused)) {
      // Told too_busy (and so not kept for resuming when the sink goes).
      upload.reactor_failure = FileError{refused.error_code, refused.error_message};
      return reply.fail(refused.error_code, refused.error_message);
    }
    upload.finishing = true;
    upload.route = context.defer();
  }

 private:
  UploadPtr upload_;
};

bool is_lower_hex_sha256(std::string_view text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

class Put final : public Command {
 public:
  std::string_view name() const noexcept override { return "put"; }
  Permission permission() const noexcept override { return Permission::write_files; }
  std::string_view summary() const noexcept override {
    return "stores the body as file \"name\" beneath the file root, atomically; optional \"sha256\" is checked, "
           "optional \"offset\" continues a failed upload; reply: sha256, size";
  }
  bool streams_body() const noexcept override { return true; }
  void run(const proto::Request& /*request*/, proto::Reply& reply, CommandContext& /*context*/) override {
    reply.fail(proto::ErrorCode::internal, "put takes its body as a stream");
  }
  std::unique_ptr<BodySink> open_body(const proto::Request& request, proto::Reply& reply,
                                      CommandContext& context) override;
};

std::unique_ptr<BodySink> Put::open_body(const proto::Request& request, proto::Reply& reply,
                                         CommandContext& context) {
  auto settings = file_settings(context, reply);
  if (!settings) return nullptr;
  if (request.mode != proto::RequestMode::json) {
    reply.fail(proto::ErrorCode::bad_request, "put needs the json framing (a header with \"name\" and total_size)");
    return nullptr;
  }
  files::CheckedName name;
  if (!read_file_name(request, *settings, "put", name, reply)) return nullptr;
  std::optional<std::uint64_t> total_size;
  std::optional<std::uint64_t> offset;
  if (!read_optional_u64(request, "total_size", total_size, reply)) return nullptr;
  if (!read_optional_u64(request, "offset", offset, reply)) return nullptr;
  // A resumed upload's total_size is the rest of the file.
  const std::uint64_t file_size = offset.value_or(0) + total_size.value_or(0);
  if (file_size > settings->max_file_size || file_size < offset.value_or(0)) {
    std::string message = "put: a file of ";
    message.append(std::to_string(file_size)).append(" bytes exceeds files.max_file_size ");
    message.append(std::to_string(settings->max_file_size));
    reply.fail(proto::ErrorCode::frame_too_large, message);
    return nullptr;
  }
  std::optional<std::string> expected;
  if (const auto field = request.header["sha256"]; field.error() != simdjson::NO_SUCH_FIELD) {
    std::string_view text;
    if (field.get_string().get(text) != simdjson::SUCCESS || !is_lower_hex_sha256(text)) {
      reply.fail(proto::ErrorCode::bad_request, "put: \"sha256\" must be 64 lowercase hex digits");
      return nullptr;
    }
    expected.emplace(text);
  }
  // Last, once nothing else can refuse the request: a kept upload taken out
  // of the table is this request's from here on.
  const PartialPolicy policy{settings->resume_window, settings->max_partials};
  PartialUploads::Claim claim = context.host.partial_uploads().claim(settings->root, files::joined(name), offset,
                                                                     policy, base::Clock::now());
  close_in_worker(context.host, std::move(claim.released));
  // A mismatch: a kept upload of another size, or nothing kept and an offset
  // past 0 (offset 0 with nothing kept is an ordinary upload).
  if (offset && !claim.upload && (claim.kept_size || *offset != 0)) {
    const std::uint64_t kept = claim.kept_size.value_or(0);
    std::string message = "put: \"offset\" ";
    message.append(std::to_string(*offset));
    if (kept == 0) {
      message.append(" but no partial upload of ").append(quote_client_name(files::joined(name)));
      message.append(" is kept; send the whole file without offset");
    } else {
      message.append(" does not match the ").append(std::to_string(kept)).append(" bytes kept of ");
      message.append(quote_client_name(files::joined(name))).append(" (partial_size)");
    }
    reply.fail(proto::ErrorCode::bad_request, message);
    reply.add_field("partial_size", kept);
    return nullptr;
  }
  auto upload = std::make_shared<Upload>(context.host, std::move(*settings), std::move(name));
  upload->expected_sha256 = std::move(expected);
  if (claim.upload) {
    upload->file = std::move(claim.upload->file);
    upload->sha256 = std::move(claim.upload->sha256);
    upload->written = claim.upload->size;
  }
  upload->route = context.route;
  return std::make_unique<PutSink>(std::move(upload));
}

}  // namespace

std::unique_ptr<Command> make_put_command() { return std::make_unique<Put>(); }

}  // namespace framed::commands
