// systemd readiness (Type=notify) without linking libsystemd: the protocol is one datagram of
// "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET. libsystemd would add half a
// dozen shared libraries (and ~1 MiB of RSS and start-up time) to every process of the cluster.
#pragma once

#include <string_view>

namespace clutch::master {

// Sends `state` (e.g. "READY=1\nSTATUS=serving") when run under systemd; does nothing otherwise.
// Returns false if $NOTIFY_SOCKET is set but the datagram could not be sent.
bool notify_systemd(std::string_view state);

}  // namespace clutch::master
