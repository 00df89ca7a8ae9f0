// Access to the Asio loop behind a Context, for code that wants Asio's own sockets and timers.
// Including this header brings in Asio; the rest of clutch's public headers do not.
#pragma once

#include <asio/io_context.hpp>

#include "clutch/context.hpp"

namespace clutch {

inline asio::io_context& io_context(Context& ctx) {
  return *static_cast<asio::io_context*>(ctx.native_loop());
}

}  // namespace clutch
