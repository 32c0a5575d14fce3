#pragma once
// The shards of a daemon with several reactors (daemon.reactors > 1), one per
// reactor thread, and the few things they do together: reach another shard
// through its reactor's post queue, hand a publish to every shard in one
// order, and stop every reactor once every shard has drained.
//
// Threads: attach() is called for every shard before any of them serves
// (the threads are released after it, which orders the writes before every
// read); after that the table is read-only, and post() and
// post_everywhere_in_order() may be called from any reactor thread.

#include <atomic>
#include <functional>
#include <mutex>
#include <vector>

namespace framed::server {

class Shard;

class ShardGroup {
 public:
  explicit ShardGroup(unsigned size) : shards_(size, nullptr) {}

  ShardGroup(const ShardGroup&) = delete;
  ShardGroup& operator=(const ShardGroup&) = delete;

  [[nodiscard]] unsigned size() const noexcept { return static_cast<unsigned>(shards_.size()); }
  void attach(unsigned index, Shard& shard) noexcept { shards_[index] = &shard; }
  // Another thread may only post to it; its own thread may use all of it.
  [[nodiscard]] Shard& shard(unsigned index) const noexcept { return *shards_[index]; }

  // Runs fn on shard `index`'s reactor thread, after what was posted there
  // before it.
  void post(unsigned index, std::function<void()> fn) const;
  // Posts make(i) to every shard i, all under one lock: what two threads
  // post this way reaches every shard in the same order.
  void post_everywhere_in_order(const std::function<std::function<void()>(unsigned index)>& make);

  // SIGTERM, in two steps for all shards together. A shard has answered
  // what it received (only http clients are left): when the last one has,
  // every shard is told (Shard::every_reactor_drained), so /healthz says 503
  // until the whole daemon has drained. A shard has closed everything:
  // when the last one has, every reactor is told to stop; until then each
  // keeps answering the others.
  void shard_drained();
  void shard_finished();

 private:
  std::vector<Shard*> shards_;
  std::mutex order_mutex_;
  std::atomic<unsigned> drained_{0};
  std::atomic<unsigned> finished_{0};
};

}  // namespace framed::server
