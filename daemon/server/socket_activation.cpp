#include "server/socket_activation.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <string_view>

namespace framed::server {
namespace {

constexpr int kFirstPassedFd = 3;  // SD_LISTEN_FDS_START

bool parse_int(const char* text, long& out) {
  if (text == nullptr) return false;
  const std::string_view view(text);
  const auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), out);
  return ec == std::errc() && end == view.data() + view.size();
}

}  // namespace

std::vector<ActivatedSocket> take_activated_sockets() {
  std::vector<ActivatedSocket> sockets;
  long pid = 0;
  long count = 0;
  const bool for_us = parse_int(std::getenv("LISTEN_PID"), pid) && pid == ::getpid() &&
                      parse_int(std::getenv("LISTEN_FDS"), count) && count > 0;
  const char* names_env = std::getenv("LISTEN_FDNAMES");
  const std::string names = names_env != nullptr ? names_env : "";
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!for_us) return sockets;

  std::size_t name_pos = 0;
  for (long i = 0; i < count; ++i) {
    const int fd = kFirstPassedFd + static_cast<int>(i);
    ActivatedSocket socket;
    socket.fd.reset(fd);
    const auto colon = names.find(':', name_pos);
    if (name_pos <= names.size()) {
      socket.name = names.substr(name_pos, colon == std::string::npos ? std::string::npos : colon - name_pos);
      name_pos = colon == std::string::npos ? names.size() + 1 : colon + 1;
    }
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    socklen_t length = sizeof socket.type;
    ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &socket.type, &length);
    socket.address.length = sizeof socket.address.storage;
    ::getsockname(fd, socket.address.get(), &socket.address.length);
    sockets.push_back(std::move(socket));
  }
  return sockets;
}

}  // namespace framed::server
