// systemd readiness (Type=notify) without linking libsystemd: the protocol is one datagram of
// "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET. libsystemd would add half a
// dozen shared libraries (and ~1 MiB of RSS and start-up time) to every process of the cluster.
#pragma once

#include <string_view>

namespace clutch::master {

// Sends `state` (e.g. "READY=1\nSTATUS=serving") when run under systemd; does nothing otherwise.
// Returns false if $NOTIFY_SOCKET is set but the datagram could not be sent.
bool notify_systemd(std::string_view state);

// The service manager's watchdog period ($WATCHDOG_USEC, for this pid per $WATCHDOG_PID), or 0
// when none is asked for. The master sends WATCHDOG=1 at half of it while its loop turns.
long long systemd_watchdog_usec();

// CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it in MONOTONIC_USEC.
long long monotonic_usec();

}  // namespace clutch::master
