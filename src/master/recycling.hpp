// The pure part of recycling (recycling.cpp): a worker's own request limit.
#pragma once

#include <cstdint>

namespace clutch::master {

// max_requests plus `random` folded into 0..jitter (gunicorn's randint(0, jitter)); 0 when
// max_requests is 0 (no limit).
uint64_t request_limit(uint64_t max_requests, uint64_t jitter, uint64_t random);

}  // namespace clutch::master
