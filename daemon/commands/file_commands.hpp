#pragma once
// What put, get, list and delete share (PROTOCOL.md section 4, CONFIG.md
// [files]): the settings a request copies from the config (a reload may
// replace the config while its jobs run), the name read from the request
// and checked, the root opened in a worker, and errno turned into an answer.
//
// The disk is touched only in worker jobs; everything here that blocks says
// so. The reactor side checks the request, copies what the job needs and
// answers what comes back.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/unique_fd.hpp"
#include "commands/command.hpp"
#include "digest/sha256.hpp"
#include "files/file_name.hpp"

namespace framed::commands {

struct FileSettings {
  std::string root;
  std::uint64_t max_file_size = 0;
  bool fsync = true;
  bool allow_subdirs = false;
  std::chrono::nanoseconds resume_window{};  // failed uploads kept this long (0: none)
  std::uint32_t max_partials = 0;
};

// An answer that is not a success: code and message, for the client.
struct FileError {
  proto::ErrorCode code = proto::ErrorCode::internal;
  std::string message;
};

// The [files] settings, or null with `reply` failed (forbidden) when the
// config has no [files].
std::optional<FileSettings> file_settings(const CommandContext& context, proto::Reply& reply);

// The request's file name ("name" in json mode, the argument bytes in simple
// mode), checked. False with `reply` failed when it is missing or refused.
bool read_file_name(const proto::Request& request, const FileSettings& settings, std::string_view command,
                    files::CheckedName& name, proto::Reply& reply);

// An optional non-negative integer header field; false with `reply` failed
// when present but not one.
bool read_optional_u64(const proto::Request& request, std::string_view key, std::optional<std::uint64_t>& out,
                       proto::Reply& reply);

// What a failed file operation on `name` tells the client. Blocking-free.
FileError file_error(int error, const files::CheckedName& name);

// The root, as an O_PATH directory descriptor (worker only).
base::UniqueFd open_root(const std::string& root, int& error);

// Hands a job to the worker pool; false when the pool is full, with `reply`
// failed (too_busy) for `command`.
bool submit_file_job(CommandHost& host, std::string_view command, std::function<void()> job, proto::Reply& reply);

// SHA-256 fed in pieces: lib/digest, shared with framectl.
using digest::Sha256;

// Registers put (file_put.cpp), get (file_get.cpp), list and delete
// (file_list.cpp). They are registered whether or not [files] is configured:
// without it they answer forbidden.
void register_file_commands(CommandRegistry& registry);
std::unique_ptr<Command> make_put_command();
std::unique_ptr<Command> make_get_command();
std::unique_ptr<Command> make_list_command();
std::unique_ptr<Command> make_delete_command();

}  // namespace framed::commands
