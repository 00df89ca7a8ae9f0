// hiredis, loaded when the first Redis connection opens (a redis:// queue, a cluster-scope
// schedule's tick lock) instead of at every process's exec: the master never opens one, and
// most workers never do (common/shared_library.hpp).
#pragma once

#include <hiredis/hiredis.h>

#include "common/shared_library.hpp"

// Every hiredis function clutch calls; each becomes a member of HiredisApi of the same name.
#define CLUTCH_HIREDIS_FUNCTIONS(X) \
  X(freeReplyObject)                \
  X(redisAppendCommandArgv)         \
  X(redisBufferWrite)               \
  X(redisCommand)                   \
  X(redisCommandArgv)               \
  X(redisConnectNonBlock)           \
  X(redisConnectWithTimeout)        \
  X(redisFree)                      \
  X(redisGetReply)                  \
  X(redisSetTimeout)

namespace clutch {

CLUTCH_SHARED_LIBRARY(HiredisApi, CLUTCH_HIREDIS_FUNCTIONS, hiredis)

}  // namespace clutch
