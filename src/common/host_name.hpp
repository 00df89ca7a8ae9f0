// This machine's name (gethostname), for the names clutch gives its consumers and claims.
#pragma once

#include <unistd.h>

#include <string>

namespace clutch {

inline std::string host_name() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) return "host";
  return host;
}

}  // namespace clutch
