#pragma once
// Connections open per source address on one listener, for
// max_connections_per_ip. An entry exists only while its address has a
// connection open, so the table is bounded by the open connections
// (daemon.max_connections), not by how many addresses ever connected.
//
// Keys are the address bytes (4 for IPv4, 16 for IPv6; an IPv4-mapped IPv6
// address counts as its IPv4 one). One table per listener, shared by every
// reactor serving it (the limit is the daemon's, not a reactor's share), so
// its entries are under a mutex: taken once per accept and per close.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace framed::auth {

class AddressCounts {
 public:
  // The key of an inet peer; nullopt for other families.
  static std::optional<std::string> key_of(const sockaddr_storage& peer) {
    if (peer.ss_family == AF_INET) {
      const auto& in = reinterpret_cast<const sockaddr_in&>(peer);
      return std::string(reinterpret_cast<const char*>(&in.sin_addr), sizeof in.sin_addr);
    }
    if (peer.ss_family == AF_INET6) {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(peer);
      const auto* bytes = reinterpret_cast<const char*>(&in6.sin6_addr);
      if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) return std::string(bytes + 12, 4);
      return std::string(bytes, sizeof in6.sin6_addr);
    }
    return std::nullopt;
  }

  // One more connection from `key`, unless it has `limit` open already.
  bool try_add(const std::string& key, std::uint32_t limit) {
    const std::lock_guard lock(mutex_);
    auto [it, fresh] = counts_.try_emplace(key, 0);
    if (it->second >= limit) return false;
    ++it->second;
    return true;
  }
  void remove(const std::string& key) noexcept {
    const std::lock_guard lock(mutex_);
    const auto it = counts_.find(key);
    if (it == counts_.end()) return;
    if (--it->second == 0) counts_.erase(it);
  }
  [[nodiscard]] std::uint32_t open(const std::string& key) const noexcept {
    const std::lock_guard lock(mutex_);
    const auto it = counts_.find(key);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::uint32_t> counts_;
};

// One connection's place in an AddressCounts, given back when it goes.
class AddressSlot {
 public:
  AddressSlot(std::shared_ptr<AddressCounts> counts, std::string key) noexcept
      : counts_(std::move(counts)), key_(std::move(key)) {}
  AddressSlot(AddressSlot&& other) noexcept = default;
  AddressSlot& operator=(AddressSlot&& other) noexcept {
    if (this != &other) {
      release();
      counts_ = std::move(other.counts_);
      key_ = std::move(other.key_);
    }
    return *this;
  }
  AddressSlot(const AddressSlot&) = delete;
  AddressSlot& operator=(const AddressSlot&) = delete;
  ~AddressSlot() { release(); }

 private:
  void release() noexcept {
    if (counts_) counts_->remove(key_);
    counts_.reset();
  }
  std::shared_ptr<AddressCounts> counts_;
  std::string key_;
};

}  // namespace framed::auth
