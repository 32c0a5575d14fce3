#include "server/shard_group.hpp"

#include "server/shard.hpp"

namespace framed::server {

void ShardGroup::post(unsigned index, std::function<void()> fn) const { shards_[index]->reactor().post(std::move(fn)); }

void ShardGroup::post_everywhere_in_order(const std::function<std::function<void()>(unsigned index)>& make) {
  // Each reactor's queue is FIFO; holding one lock across every push makes
  // the order of two such calls the same in every queue.
  const std::lock_guard lock(order_mutex_);
  for (unsigned index = 0; index < size(); ++index) post(index, make(index));
}

void ShardGroup::shard_drained() {
  if (drained_.fetch_add(1) + 1 != size()) return;
  for (unsigned index = 0; index < size(); ++index) {
    post(index, [this, index] { shards_[index]->every_reactor_drained(); });
  }
}

void ShardGroup::shard_finished() {
  if (finished_.fetch_add(1) + 1 != size()) return;
  for (unsigned index = 0; index < size(); ++index) {
    post(index, [this, index] { shards_[index]->reactor().stop(); });
  }
}

}  // namespace framed::server
