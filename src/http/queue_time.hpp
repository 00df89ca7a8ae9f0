// When a request began waiting, as a proxy in front says it (X-Request-Start, the header nginx,
// Heroku's router and New Relic use: "t=" and a Unix time in seconds with a fraction,
// milliseconds or microseconds). Pure, so its forms are unit-tested apart from the server.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace clutch::http {

// How long ago `value` says the request started, as of `now`; nullopt for a value that is not
// one of the forms, or that lies over an hour back or over a minute ahead (a clock or a client
// that cannot be believed: the worker's own measure is used instead). A start up to a minute
// ahead (clocks a little apart) reads as 0.
std::optional<std::chrono::microseconds> queue_age_from_header(
    std::string_view value, std::chrono::system_clock::time_point now);

}  // namespace clutch::http
