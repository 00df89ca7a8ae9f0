// What an exception that escapes user code does (config on_uncaught_exception): "log" (the
// default) logs it and the process carries on; "exit" logs it and the process exits with code 70
// at once, to be replaced by the master as after any crash (egg's behaviour: a worker whose code
// threw is not trusted to go on). Exceptions that have someone to tell are not uncaught: a message
// handler's fails its message, an HTTP handler's becomes a 500.
#pragma once

#include <string_view>

namespace clutch::runtime {

inline constexpr int kExitUncaught = 70;  // EX_SOFTWARE

void set_exit_on_uncaught(bool exit);
// Logs "`what` threw: `error`" and applies the policy.
void uncaught(std::string_view what, std::string_view error);

}  // namespace clutch::runtime
