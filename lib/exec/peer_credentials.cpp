#include "exec/peer_credentials.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace framed::exec {
namespace {

// Enough for nearly everyone in one call; the kernel says how much more it
// needs (ERANGE) otherwise. NGROUPS_MAX (65536) bounds the retry.
constexpr std::size_t kInitialGroups = 64;
constexpr std::size_t kMaxGroups = 65536;

}  // namespace

bool PeerCredentials::in_group(gid_t group) const noexcept {
  return group == gid || std::find(groups.begin(), groups.end(), group) != groups.end();
}

std::optional<PeerCredentials> read_peer_credentials(int fd) {
  // Other families answer SO_PEERCRED too, with the overflow ids: ask first.
  int domain = 0;
  socklen_t domain_length = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &domain_length) != 0 || domain != AF_UNIX) return std::nullopt;
  ucred cred{};
  socklen_t length = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0 || length != sizeof cred) return std::nullopt;
  PeerCredentials peer;
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;

  // Linux 4.13+. Without it, only the primary group counts.
  peer.groups.resize(kInitialGroups);
  for (;;) {
    socklen_t size = static_cast<socklen_t>(peer.groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, peer.groups.data(), &size) == 0) {
      peer.groups.resize(size / sizeof(gid_t));
      break;
    }
    const std::size_t needed = size / sizeof(gid_t);
    if (errno != ERANGE || needed <= peer.groups.size() || needed > kMaxGroups) {
      peer.groups.clear();
      break;
    }
    peer.groups.resize(needed);
  }
  return peer;
}

}  // namespace framed::exec
