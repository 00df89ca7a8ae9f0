// What the master reads of a child from /proc: memory, CPU time, whether it is stopped. Each
// returns a neutral value (0, false) for a process that is gone.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace clutch::master {

// Resident memory of its own (RssAnon + RssFile): shared memory such as large payloads' regions
// is left out. From /proc/PID/status.
std::size_t resident_bytes(pid_t pid);
double cpu_seconds(pid_t pid);       // user + system time, from /proc/PID/stat
bool process_is_stopped(pid_t pid);  // state T or t: SIGSTOP or a debugger

// The uid owning the local TCP socket bound to `client` and connected to `server` (both
// "ADDR:PORT" as /proc/net/tcp writes them: hex, the address in host order), found in the text of
// /proc/net/tcp or tcp6; -1 if no row matches. Pure.
long tcp_socket_uid(std::string_view proc_net_tcp, std::string_view client,
                    std::string_view server);
// /proc/net/tcp's form of an endpoint: "0100007F:1F90" for 127.0.0.1:8080.
std::string proc_net_endpoint(const sockaddr_storage& address);
// The uid of the process that owns the other end of an accepted loopback TCP connection, or -1.
long loopback_peer_uid(int fd);

}  // namespace clutch::master
