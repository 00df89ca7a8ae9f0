// Runs a blocking MessageSource (Redis through hiredis's synchronous calls) on a thread of its
// own, so that a broker that accepts and never answers cannot hold up the agent's event loop:
// its 200 ms schedule ticks on, and the messenger keeps routing.
//
// The caller's side never waits on the broker: fetch() hands out what the thread read ahead
// (asking it to read more), settling calls queue commands that the thread runs in order, and the
// queue's figures are the last the thread read. Only the operator's dead-letter commands and a
// producer's publish wait for their answer, boundedly.
#pragma once

#include <memory>

#include "clutch/mq.hpp"

namespace clutch::mq {

std::unique_ptr<MessageSource> run_off_loop(std::unique_ptr<MessageSource> inner);

}  // namespace clutch::mq
