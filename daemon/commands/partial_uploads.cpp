#include "commands/partial_uploads.hpp"

#include <algorithm>
#include <memory>
#include <utility>

#include "exec/worker_pool.hpp"

namespace framed::commands {

void PartialUploads::sweep(const PartialPolicy& policy, base::TimePoint now, Released& released) {
  // uploads_ is oldest first: the expired ones are a prefix.
  const auto fresh = std::find_if(uploads_.begin(), uploads_.end(), [&](const PartialUpload& upload) {
    return now - upload.kept_at < policy.resume_window;
  });
  for (auto it = uploads_.begin(); it != fresh; ++it) released.push_back(std::move(*it));
  counters_.expired += static_cast<std::uint64_t>(fresh - uploads_.begin());
  uploads_.erase(uploads_.begin(), fresh);
  // A reload may have lowered max_partials.
  while (uploads_.size() > policy.max_partials) {
    released.push_back(std::move(uploads_.front()));
    uploads_.erase(uploads_.begin());
    ++counters_.evicted;
  }
}

PartialUploads::Released PartialUploads::park(PartialUpload upload, const PartialPolicy& policy,
                                              base::TimePoint now) {
  Released released;
  if (policy.max_partials == 0 || policy.resume_window <= std::chrono::nanoseconds::zero()) {
    released.push_back(std::move(upload));
    return released;
  }
  const std::lock_guard lock(mutex_);
  sweep(policy, now, released);
  // One partial per name: the newer one is what the client last sent.
  const auto same = std::find_if(uploads_.begin(), uploads_.end(), [&](const PartialUpload& kept) {
    return kept.name == upload.name && kept.root == upload.root;
  });
  if (same != uploads_.end()) {
    released.push_back(std::move(*same));
    uploads_.erase(same);
    ++counters_.discarded;
  }
  if (uploads_.size() >= policy.max_partials) {
    released.push_back(std::move(uploads_.front()));
    uploads_.erase(uploads_.begin());
    ++counters_.evicted;
  }
  upload.kept_at = now;
  uploads_.push_back(std::move(upload));
  ++counters_.kept;
  counters_.held = uploads_.size();
  return released;
}

PartialUploads::Claim PartialUploads::claim(const std::string& root, const std::string& name,
                                            std::optional<std::uint64_t> offset, const PartialPolicy& policy,
                                            base::TimePoint now) {
  Claim claim;
  const std::lock_guard lock(mutex_);
  sweep(policy, now, claim.released);
  const auto kept = std::find_if(uploads_.begin(), uploads_.end(), [&](const PartialUpload& upload) {
    return upload.name == name && upload.root == root;
  });
  if (kept != uploads_.end()) {
    if (!offset) {
      claim.released.push_back(std::move(*kept));
      uploads_.erase(kept);
      ++counters_.discarded;
    } else if (*offset == kept->size) {
      claim.upload.emplace(std::move(*kept));
      uploads_.erase(kept);
      ++counters_.resumed;
    } else {
      claim.kept_size = kept->size;
    }
  }
  counters_.held = uploads_.size();
  return claim;
}

std::vector<PartialUploads::Listed> PartialUploads::list(const std::string& root, std::string_view prefix,
                                                         const PartialPolicy& policy, base::TimePoint now,
                                                         Released& released) {
  std::vector<Listed> listed;
  {
    const std::lock_guard lock(mutex_);
    sweep(policy, now, released);
    counters_.held = uploads_.size();
    for (const PartialUpload& upload : uploads_) {
      if (upload.root == root && upload.name.starts_with(prefix)) {
        listed.push_back({upload.name, upload.size, upload.kept_at_unix});
      }
    }
  }
  std::sort(listed.begin(), listed.end(), [](const Listed& a, const Listed& b) { return a.name < b.name; });
  return listed;
}

PartialUploads::Released PartialUploads::expire(const PartialPolicy& policy, base::TimePoint now) {
  Released released;
  const std::lock_guard lock(mutex_);
  sweep(policy, now, released);
  counters_.held = uploads_.size();
  return released;
}

std::optional<base::TimePoint> PartialUploads::next_expiry(const PartialPolicy& policy) const {
  const std::lock_guard lock(mutex_);
  if (uploads_.empty()) return std::nullopt;
  return uploads_.front().kept_at + policy.resume_window;  // oldest first
}

PartialCounters PartialUploads::counters() const {
  const std::lock_guard lock(mutex_);
  return counters_;
}

void PartialUploads::reset_counters() {
  const std::lock_guard lock(mutex_);
  counters_ = PartialCounters{.held = counters_.held};
}

void close_in_worker(CommandHost& host, PartialUploads::Released released) {
  if (released.empty()) return;
  // Closing the last descriptor of a large unlinked file frees its blocks,
  // which may take a while: not on a reactor thread, when a worker can.
  auto owned = std::make_shared<PartialUploads::Released>(std::move(released));
  if (!host.worker_pool().try_submit([owned]() mutable { owned->clear(); })) owned->clear();
}

}  // namespace framed::commands
