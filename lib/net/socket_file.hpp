#pragma once
// Owns the file of a Unix socket that this process bound: removes it when
// dropped, so a stopped listener leaves no stale socket file behind. Empty
// (and a no-op) for inet addresses, abstract names and adopted sockets.

#include <string>

#include "net/socket_address.hpp"

namespace framed::net {

class SocketFile {
 public:
  SocketFile() = default;
  // Takes ownership of the path of `address` if it names a file.
  explicit SocketFile(const SocketAddress& address);
  SocketFile(SocketFile&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  SocketFile& operator=(SocketFile&& other) noexcept;
  SocketFile(const SocketFile&) = delete;
  SocketFile& operator=(const SocketFile&) = delete;
  ~SocketFile() { remove(); }

  // Unlinks the file now (once).
  void remove() noexcept;

 private:
  std::string path_;
};

}  // namespace framed::net
