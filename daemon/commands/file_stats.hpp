#pragma once
// What the file commands count, per shard (CommandHost::file_stats): plain
// integers written on that shard's reactor thread. The kept uploads' own
// counts are process-wide, in PartialUploads (partial_uploads.hpp).

#include <cstdint>

namespace framed::commands {

struct FileStats {
  std::uint64_t bytes_in = 0;          // put body bytes taken for the disk
  std::uint64_t bytes_out = 0;         // get body bytes handed to the socket
  std::uint64_t files_committed = 0;   // put: a file became visible under its name
  std::uint64_t uploads_aborted = 0;   // put: cut off, or failed, before a commit

  FileStats& operator+=(const FileStats& other) noexcept {
    bytes_in += other.bytes_in;
    bytes_out += other.bytes_out;
    files_committed += other.files_committed;
    uploads_aborted += other.uploads_aborted;
    return *this;
  }
};

}  // namespace framed::commands
