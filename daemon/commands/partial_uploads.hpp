#pragma once
// Uploads that failed half way, kept aside so that a `put` with `offset` can
// continue them (PROTOCOL.md section 4, files.resume_window and
// files.max_partials).
//
// A kept upload is its O_TMPFILE descriptor (the file has no name: nothing
// under the root shows it, no `get` can open it), how many bytes it holds,
// and the SHA-256 state over those bytes, so a resumed upload answers the
// whole file's hash without reading it again. It lives only in this process:
// a restart forgets it and the kernel frees its blocks.
//
// Threads: one table per process (owned by server::Daemon), so an upload cut
// on one reactor may be resumed through another. Every method takes the
// table's mutex for a few map operations and never does I/O under it:
// uploads are parked from worker jobs, claimed, listed and discarded from
// reactor threads. What leaves the table (expired, evicted, discarded) is
// returned to the caller, who closes it where closing may take time
// (freeing a large file's blocks): in a worker job (close_in_worker).
//
// Bounds: at most max_partials entries (the oldest goes first), each at
// most resume_window old. Expiry is on time: a reactor whose worker parked
// an upload arms a timer for the oldest entry's deadline (next_expiry,
// expire), so a kept upload's descriptor and blocks are released at
// resume_window even if nobody touches the table; every touch (put, list, a
// new partial) sweeps too.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "base/unique_fd.hpp"
#include "commands/file_commands.hpp"

namespace framed::commands {

struct PartialUpload {
  std::string root;  // files.root when it was kept: a reload that moves the root forgets it
  std::string name;  // the checked name, joined
  base::UniqueFd file;  // O_TMPFILE, written up to `size`
  Sha256 sha256;        // over the first `size` bytes
  std::uint64_t size = 0;
  base::TimePoint kept_at{};
  std::int64_t kept_at_unix = 0;  // for `list`: when it was kept, in Unix seconds
};

// How long and how many (from [files]), read by the caller from its config
// snapshot.
struct PartialPolicy {
  std::chrono::nanoseconds resume_window{};
  std::uint32_t max_partials = 0;
};

// What the table has done since start, for `stats` (process-wide counts).
struct PartialCounters {
  std::uint64_t kept = 0;      // uploads parked
  std::uint64_t resumed = 0;   // claimed by a put with a matching offset
  std::uint64_t expired = 0;   // past resume_window
  std::uint64_t evicted = 0;   // the oldest, pushed out by max_partials
  std::uint64_t discarded = 0;  // replaced: a put without offset, or a newer partial of the name
  std::uint64_t held = 0;      // in the table now
};

class PartialUploads {
 public:
  using Released = std::vector<PartialUpload>;

  // Keeps `upload` (not kept when the policy keeps none). Returns what left
  // the table to make room for it, or it itself when not kept.
  [[nodiscard]] Released park(PartialUpload upload, const PartialPolicy& policy, base::TimePoint now);

  // The result of a put's look-up.
  struct Claim {
    std::optional<PartialUpload> upload;  // taken out: the offset matched
    std::optional<std::uint64_t> kept_size;  // a partial of the name is kept (size), on a mismatch
    Released released;                      // expired meanwhile, or discarded
  };
  // A put of `name` with `offset`: a kept upload of exactly `offset` bytes
  // is taken out and returned; another size is left alone and reported.
  // Without an offset, a kept upload of the name is discarded (the put
  // starts over).
  [[nodiscard]] Claim claim(const std::string& root, const std::string& name, std::optional<std::uint64_t> offset,
                            const PartialPolicy& policy, base::TimePoint now);

  struct Listed {
    std::string name;
    std::uint64_t size = 0;
    std::int64_t kept_at_unix = 0;
  };
  // Kept uploads of `root` whose names start with `prefix`, sorted by name.
  [[nodiscard]] std::vector<Listed> list(const std::string& root, std::string_view prefix,
                                         const PartialPolicy& policy, base::TimePoint now, Released& released);

  // Removes what is past resume_window (or over max_partials) and returns
  // it, for a timer at next_expiry.
  [[nodiscard]] Released expire(const PartialPolicy& policy, base::TimePoint now);
  // When the oldest kept upload reaches resume_window; none when nothing is
  // kept.
  [[nodiscard]] std::optional<base::TimePoint> next_expiry(const PartialPolicy& policy) const;

  [[nodiscard]] PartialCounters counters() const;
  // `stats` with "reset": the event counts back to zero (held stays).
  void reset_counters();

 private:
  void sweep(const PartialPolicy& policy, base::TimePoint now, Released& released);

  mutable std::mutex mutex_;
  std::vector<PartialUpload> uploads_;  // oldest first; at most max_partials
  PartialCounters counters_;
};

// Closes released uploads in a worker job (or here when the pool is full).
void close_in_worker(CommandHost& host, PartialUploads::Released released);

}  // namespace framed::commands
