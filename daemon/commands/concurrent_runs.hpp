#pragma once
// How many runs of each exec command are queued or running now, in the whole
// daemon: what commands.*.max_concurrent bounds. With several reactors a
// command's runs start on any of them, so the count is shared, under a
// mutex (taken twice per run, next to a fork and an exec).

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace framed::commands {

class ConcurrentRuns {
 public:
  // One more run of `name`, unless `limit` (0: none) are going already.
  // False with `running` set to how many are.
  bool try_start(std::string_view name, std::uint32_t limit, std::uint32_t& running) {
    const std::lock_guard lock(mutex_);
    auto it = runs_.find(name);
    if (it == runs_.end()) it = runs_.emplace(std::string(name), 0).first;
    running = it->second;
    if (limit != 0 && it->second >= limit) return false;
    ++it->second;
    return true;
  }
  void finish(std::string_view name) noexcept {
    const std::lock_guard lock(mutex_);
    const auto it = runs_.find(name);
    if (it == runs_.end()) return;
    if (--it->second == 0) runs_.erase(it);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::uint32_t, std::less<>> runs_;
};

}  // namespace framed::commands
