#pragma once
// Who is at the other end of a Unix stream socket, as the kernel saw it when
// the peer called connect(): SO_PEERCRED (pid, uid, gid) and SO_PEERGROUPS
// (its supplementary groups). This is what allow_uids/allow_gids of an exec
// command are checked against; a TCP peer has no such identity.

#include <sys/types.h>

#include <optional>
#include <vector>

namespace framed::exec {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;               // primary group
  std::vector<gid_t> groups;   // supplementary groups (may include gid)

  [[nodiscard]] bool in_group(gid_t group) const noexcept;
};

// For a connected AF_UNIX stream socket; nullopt for anything else or when
// the kernel will not say (an error is as good as no identity: refuse).
std::optional<PeerCredentials> read_peer_credentials(int fd);

}  // namespace framed::exec
