#include "net/socket_file.hpp"

#include <unistd.h>

namespace framed::net {

SocketFile::SocketFile(const SocketAddress& address) {
  if (address.family() != AF_UNIX) return;
  std::string text = address.to_string();
  // Abstract names ("@name") and unnamed sockets have no file.
  if (text.empty() || text.front() == '@' || text == "unix:unnamed") return;
  path_ = std::move(text);
}

SocketFile& SocketFile::operator=(SocketFile&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

void SocketFile::remove() noexcept {
  if (path_.empty()) return;
  ::unlink(path_.c_str());
  path_.clear();
}

}  // namespace framed::net
