#pragma once
// Tells systemd about state changes (sd_notify(3) without libsystemd): one
// datagram to $NOTIFY_SOCKET, a path or an abstract "@name". Silent and
// harmless when not run by systemd.

#include <string_view>

namespace framed {

// Returns false only when $NOTIFY_SOCKET is set but the message could not be
// sent (worth a log line).
bool sd_notify(std::string_view state);

}  // namespace framed
