// list and delete (PROTOCOL.md section 4), each one job in the worker pool.
//
// list walks the root (and, with files.allow_subdirs, its directories)
// without following a symlink, and answers every regular file whose name
// starts with `prefix` as {"name","size","mtime"}, sorted by name. The
// daemon's own temporary names (files::kReservedPrefix) are never shown.
// With "partial": true it lists the failed uploads kept for resuming
// instead (PartialUploads: no disk access, answered at once) as
// {"name","size","mtime"}, mtime being when the upload was cut.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "commands/file_commands.hpp"
#include "commands/partial_uploads.hpp"
#include "files/beneath.hpp"
#include "proto/json_writer.hpp"

namespace framed::commands {
namespace {

// Deeper trees are not listed below this depth (a name can hold at most
// kMaxNameLength / 2 components anyway; this bounds the walk's descriptors).
constexpr int kMaxListDepth = 32;

struct ListedFile {
  std::string name;
  std::uint64_t size = 0;
  std::int64_t mtime = 0;
};

struct DirCloser {
  void operator()(DIR* dir) const noexcept { ::closedir(dir); }
};

// Worker: the regular files beneath `directory` (an fd it takes over).
int walk(int directory_fd, const std::string& base, int depth, const FileSettings& settings,
         std::string_view prefix, std::vector<ListedFile>& out) {
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(directory_fd));
  if (!dir) {
    const int error = errno;
    ::close(directory_fd);
    return error;
  }
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string_view leaf = entry->d_name;
    if (leaf == "." || leaf == ".." || leaf.starts_with(files::kReservedPrefix)) continue;
    std::string name = base + std::string(leaf);
    struct stat st {};
    if (::fstatat(::dirfd(dir.get()), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
    if (S_ISREG(st.st_mode)) {
      if (name.starts_with(prefix)) {
        out.push_back({std::move(name), static_cast<std::uint64_t>(st.st_size), static_cast<std::int64_t>(st.st_mtime)});
      }
    } else if (S_ISDIR(st.st_mode) && settings.allow_subdirs && depth < kMaxListDepth) {
      // Only directories whose names can lead to the prefix.
      name.push_back('/');
      const std::size_t common = std::min(name.size(), prefix.size());
      if (name.compare(0, common, prefix, 0, common) != 0) continue;
      const int child = ::openat(::dirfd(dir.get()), entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0) walk(child, name, depth + 1, settings, prefix, out);
    }
  }
  return 0;
}

void append_listed(std::string& body, std::string_view name, std::uint64_t size, std::int64_t mtime) {
  if (body.size() > 1) body.push_back(',');
  body.append("{\"name\":");
  proto::append_json_string(body, name);
  body.append(",\"size\":");
  proto::append_json_uint(body, size);
  body.append(",\"mtime\":");
  proto::append_json_int(body, mtime);
  body.push_back('}');
}

// Reactor: the kept uploads, from the table (no disk access).
void list_partials(const FileSettings& settings, std::string_view prefix, proto::Reply& reply, CommandHost& host) {
  PartialUploads::Released expired;
  const auto listed = host.partial_uploads().list(
      settings.root, prefix, PartialPolicy{settings.resume_window, settings.max_partials}, base::Clock::now(), expired);
  close_in_worker(host, std::move(expired));
  reply.body_storage.clear();  // then push_back: an assignment from "[" misfires -Wrestrict at -O3
  reply.body_storage.push_back('[');
  for (const auto& upload : listed) append_listed(reply.body_storage, upload.name, upload.size, upload.kept_at_unix);
  reply.body_storage.push_back(']');
  reply.use_storage_as_body();
}

class List final : public Command {
 public:
  std::string_view name() const noexcept override { return "list"; }
  Permission permission() const noexcept override { return Permission::read_files; }
  std::string_view summary() const noexcept override {
    return "lists the files beneath the file root (optional \"prefix\"; \"partial\": true lists the failed "
           "uploads kept for resuming): JSON array of {name, size, mtime}";
  }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) override {
    auto settings = file_settings(context, reply);
    if (!settings) return;
    std::string_view prefix_text;
    bool partial = false;
    if (request.mode == proto::RequestMode::json) {
      const auto field = request.header["prefix"];
      if (field.error() != simdjson::NO_SUCH_FIELD && field.get_string().get(prefix_text) != simdjson::SUCCESS) {
        return reply.fail(proto::ErrorCode::bad_request, "list: \"prefix\" must be a string");
      }
      if (const auto flag = request.header["partial"];
          flag.error() != simdjson::NO_SUCH_FIELD && flag.get_bool().get(partial) != simdjson::SUCCESS) {
        return reply.fail(proto::ErrorCode::bad_request, "list: \"partial\" must be true or false");
      }
    } else {
      prefix_text = request.body;
    }
    if (const auto error = files::check_prefix(prefix_text)) return reply.fail(error->code, "list: " + error->message);
    if (partial) return list_partials(*settings, prefix_text, reply, context.host);
    CommandHost& host = context.host;
    auto job = [&host, route = context.route, settings = std::move(*settings), prefix = std::string(prefix_text)]() {
      std::vector<ListedFile> listed;
      int error = 0;
      const base::UniqueFd root = open_root(settings.root, error);
      if (root) {
        const int directory = ::openat(root.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        error = directory < 0 ? errno : walk(directory, "", 0, settings, prefix, listed);
      }
      std::sort(listed.begin(), listed.end(), [](const ListedFile& a, const ListedFile& b) { return a.name < b.name; });
      std::string body = "[";
      for (const ListedFile& file : listed) append_listed(body, file.name, file.size, file.mtime);
      body.push_back(']');
      host.post([&host, route, error, body = std::move(body)]() mutable {
        proto::Reply reply;
        if (error != 0) {
          host.warn_rate_limited("list: cannot read the file root: " + std::to_string(error));
          reply.fail(proto::ErrorCode::internal, "list: the file root cannot be read (the daemon's log says why)");
        } else {
          reply.body_storage = std::move(body);
          reply.use_storage_as_body();
        }
        host.deliver_reply(route, reply);
      });
    };
    if (!submit_file_job(host, "list", std::move(job), reply)) return;
    [[maybe_unused]] const ReplyRoute deferred = context.defer();
  }
};

// Worker: removes the regular file `name`; a symlink or a directory is
// refused, not removed.
std::optional<FileError> remove_file(const FileSettings& settings, const files::CheckedName& name) {
  int error = 0;
  const base::UniqueFd root = open_root(settings.root, error);
  if (!root) return file_error(error, name);
  const base::UniqueFd parent = files::open_parent_beneath(root.get(), name, false, error);
  if (!parent) return file_error(error, name);
  struct stat st {};
  if (::fstatat(parent.get(), name.leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return file_error(errno, name);
  if (S_ISLNK(st.st_mode)) return file_error(ELOOP, name);
  if (S_ISDIR(st.st_mode)) return file_error(EISDIR, name);
  if (::unlinkat(parent.get(), name.leaf.c_str(), 0) != 0) return file_error(errno, name);
  return std::nullopt;
}

class Delete final : public Command {
 public:
  std::string_view name() const noexcept override { return "delete"; }
  Permission permission() const noexcept override { return Permission::write_files; }
  std::string_view summary() const noexcept override { return "removes file \"name\" beneath the file root"; }
  void run(const proto::Request& request, proto::Reply& reply, CommandContext& context) override {
    auto settings = file_settings(context, reply);
    if (!settings) return;
    files::CheckedName name;
    if (!read_file_name(request, *settings, "delete", name, reply)) return;
    CommandHost& host = context.host;
    auto job = [&host, route = context.route, settings = std::move(*settings), name = std::move(name)]() {
      std::optional<FileError> failure = remove_file(settings, name);
      host.post([&host, route, failure = std::move(failure)] {
        proto::Reply reply;
        if (failure) reply.fail(failure->code, failure->message);
        host.deliver_reply(route, reply);
      });
    };
    if (!submit_file_job(host, "delete", std::move(job), reply)) return;
    [[maybe_unused]] const ReplyRoute deferred = context.defer();
  }
};

}  // namespace

std::unique_ptr<Command> make_list_command() { return std::make_unique<List>(); }
std::unique_ptr<Command> make_delete_command() { return std::make_unique<Delete>(); }

}  // namespace framed::commands
