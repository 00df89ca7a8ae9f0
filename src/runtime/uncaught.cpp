#include "runtime/uncaught.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <exception>
#include <stdexcept>

namespace clutch::runtime {
namespace {
bool g_exit = false;
}

void set_exit_on_uncaught(bool exit) {
  g_exit = exit;
}

void uncaught(std::string_view what, std::string_view error) {
  if (!g_exit) {
    spdlog::error("{} threw: {}", what, error);
    return;
  }
  spdlog::critical("{} threw: {}; exiting (on_uncaught_exception = exit)", what, error);
  spdlog::default_logger()->flush();
  // At once, as after a crash: the master restarts the slot and redelivers what was in flight.
  _exit(kExitUncaught);
}

}  // namespace clutch::runtime

namespace clutch::detail {

void task_failed(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    runtime::uncaught("a coroutine (clutch::Task)", e.what());
  } catch (...) {
    runtime::uncaught("a coroutine (clutch::Task)", "a non-standard exception");
  }
}

}  // namespace clutch::detail
