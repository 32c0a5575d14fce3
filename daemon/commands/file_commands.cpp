#include "commands/file_commands.hpp"

#include <fcntl.h>

#include <cerrno>
#include <utility>

#include "base/errno_text.hpp"
#include "config/config.hpp"
#include "exec/worker_pool.hpp"
#include "files/beneath.hpp"

namespace framed::commands {

std::optional<FileSettings> file_settings(const CommandContext& context, proto::Reply& reply) {
  const auto& files = context.host.config().files;
  if (!files) {
    reply.fail(proto::ErrorCode::forbidden, "files are disabled: no [files] in the config");
    return std::nullopt;
  }
  return FileSettings{files->root,          files->max_file_size, files->fsync,
                      files->allow_subdirs, files->resume_window, files->max_partials};
}

bool read_file_name(const proto::Request& request, const FileSettings& settings, std::string_view command,
                    files::CheckedName& name, proto::Reply& reply) {
  std::string_view text;
  if (request.mode == proto::RequestMode::json) {
    const auto field = request.header["name"];
    if (field.error() == simdjson::NO_SUCH_FIELD) {
      reply.fail(proto::ErrorCode::bad_request, std::string(command) + " needs \"name\": the file's name");
      return false;
    }
    if (field.get_string().get(text) != simdjson::SUCCESS) {
      reply.fail(proto::ErrorCode::bad_request, std::string(command) + ": \"name\" must be a string");
      return false;
    }
  } else {
    text = request.body;
  }
  if (const auto error = files::check_file_name(text, settings.allow_subdirs, &name)) {
    reply.fail(error->code, std::string(command) + " " + quote_client_name(text) + ": " + error->message);
    return false;
  }
  return true;
}

bool read_optional_u64(const proto::Request& request, std::string_view key, std::optional<std::uint64_t>& out,
                       proto::Reply& reply) {
  out.reset();
  if (request.mode != proto::RequestMode::json) return true;
  const auto field = request.header[key];
  if (field.error() == simdjson::NO_SUCH_FIELD) return true;
  std::uint64_t value = 0;
  if (field.get_uint64().get(value) != simdjson::SUCCESS) {
    reply.fail(proto::ErrorCode::bad_request, std::string("\"").append(key).append("\" must be a non-negative integer"));
    return false;
  }
  out = value;
  return true;
}

FileError file_error(int error, const files::CheckedName& name) {
  const std::string quoted = quote_client_name(files::joined(name));
  switch (error) {
    case ELOOP:
      return {proto::ErrorCode::forbidden, quoted + " is or passes through a symlink, which files do not follow"};
    case EXDEV:
      return {proto::ErrorCode::forbidden, quoted + " escapes the file root"};
    case ENOENT:
    case ENOTDIR:
      return {proto::ErrorCode::not_found, "no file " + quoted};
    case EISDIR:
      return {proto::ErrorCode::bad_request, quoted + " is a directory"};
    case ENOSPC:
    case EDQUOT:
      return {proto::ErrorCode::no_space, "no space left for " + quoted + " on the daemon's file system"};
    case EFBIG:
      return {proto::ErrorCode::no_space, quoted + " is larger than the daemon's file system allows"};
    case ENAMETOOLONG:
      return {proto::ErrorCode::bad_request, quoted + " is too long for the daemon's file system"};
    case EACCES:
    case EPERM:
      return {proto::ErrorCode::forbidden, "permission denied for " + quoted};
    default:
      return {proto::ErrorCode::internal, quoted + ": " + base::errno_text(error)};
  }
}

base::UniqueFd open_root(const std::string& root, int& error) {
  base::UniqueFd fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) error = errno;
  return fd;
}

bool submit_file_job(CommandHost& host, std::string_view command, std::function<void()> job, proto::Reply& reply) {
  if (host.worker_pool().try_submit(std::move(job))) return true;
  reply.fail(proto::ErrorCode::too_busy, std::string(command) + ": the worker pool is full (" +
                                             std::to_string(host.worker_pool().queued()) +
                                             " jobs waiting); try again later");
  return false;
}

void register_file_commands(CommandRegistry& registry) {
  registry.add(make_put_command());
  registry.add(make_get_command());
  registry.add(make_list_command());
  registry.add(make_delete_command());
}

}  // namespace framed::commands
