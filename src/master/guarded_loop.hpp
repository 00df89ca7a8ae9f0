// The master's loop with a catch. The master runs no user code, so an exception escaping one of
// its handlers is a bug of clutch's; left alone it would end the master mid-flight (its children
// killed by their death signal, nothing drained, the socket gone). Instead it is logged and
// handed to `on_escape`, which starts a graceful stop, and the loop goes on running that stop:
// Asio's run() may be called again after a handler threw.
#pragma once

#include <asio/io_context.hpp>

#include <functional>
#include <string_view>

namespace clutch::master {

// Runs `io` until it has no more work. Each escaped exception is logged and given to
// `on_escape(what, count)` (count: how many so far, from 1); after `max_escapes` of them the loop
// is left at once (a stop that keeps throwing must not spin): the caller then ends the hard way.
// Returns the number of escapes.
int run_guarded(asio::io_context& io, const std::function<void(std::string_view, int)>& on_escape,
                int max_escapes = 3);

}  // namespace clutch::master
