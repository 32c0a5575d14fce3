#pragma once
// Each principal's request rate, shared by every connection of that
// principal on every reactor: one TokenBucket per principal name, made when
// it is first needed and given the rate of the running config. Bounded by
// the number of [principals] (a config's size, never a client's doing).
//
// Any reactor thread: the table is under a mutex (taken when a connection
// authenticates and at a reload, not per request).

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "auth/principal_table.hpp"
#include "auth/token_bucket.hpp"
#include "config/config.hpp"

namespace framed::auth {

class RateBuckets {
 public:
  // The principal's bucket; null when it has no rate.
  std::shared_ptr<TokenBucket> bucket(const config::Principal& principal) {
    if (principal.rate == 0) return nullptr;
    const std::lock_guard lock(mutex_);
    auto& bucket = buckets_[principal.name];
    if (!bucket) {
      bucket = std::make_shared<TokenBucket>(principal.rate);
    } else if (bucket->rate() != principal.rate) {
      bucket->set_rate(principal.rate);
    }
    return bucket;
  }

  // A reload: buckets of principals that are gone, or lost their rate, go.
  void retain(const PrincipalTable& table) {
    const std::lock_guard lock(mutex_);
    std::erase_if(buckets_, [&table](const auto& entry) {
      const config::Principal* principal = table.by_name(entry.first);
      return principal == nullptr || principal->rate == 0;
    });
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<TokenBucket>> buckets_;
};

}  // namespace framed::auth
