// What an exception that escapes user code does (config on_uncaught_exception): "log" (the
// default) logs it and the process carries on; "exit" logs it and the process stops as on
// SIGTERM (no new connections or messages; requests and messages in flight finish, within the
// master's kill_timeout) and exits with code 70, to be replaced by the master as after any crash
// (egg's behaviour: a worker whose code threw is not trusted to go on, and egg's graceful closes
// its server first). Exceptions that have someone to tell are not uncaught: a message handler's
// fails its message, an HTTP handler's becomes a 500.
#pragma once

#include <functional>
#include <string_view>

namespace clutch::runtime {

inline constexpr int kExitUncaught = 70;  // EX_SOFTWARE

// `stop` (when "exit" is configured) begins the process's drain and its exit with kExitUncaught;
// without one, the process exits at once.
void set_exit_on_uncaught(bool exit, std::function<void()> stop = nullptr);
// Logs "`what` threw: `error`" and applies the policy.
void uncaught(std::string_view what, std::string_view error);

}  // namespace clutch::runtime
