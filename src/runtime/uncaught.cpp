#include "runtime/uncaught.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <exception>
#include <stdexcept>

namespace clutch::runtime {
namespace {
bool g_exit = false;
std::function<void()> g_stop;
bool g_stopping = false;
}  // namespace

void set_exit_on_uncaught(bool exit, std::function<void()> stop) {
  g_exit = exit;
  g_stop = std::move(stop);
}

void uncaught(std::string_view what, std::string_view error) {
  if (!g_exit) {
    spdlog::error("{} threw: {}", what, error);
    return;
  }
  if (g_stopping) {
    spdlog::critical("{} threw: {}; already exiting (on_uncaught_exception = exit)", what, error);
    return;
  }
  spdlog::critical("{} threw: {}; exiting (on_uncaught_exception = exit)", what, error);
  spdlog::default_logger()->flush();
  if (!g_stop) _exit(kExitUncaught);  // before the loop runs: nothing in flight to finish
  // As on SIGTERM: the requests and messages in flight finish, then the exit; the master
  // replaces the process as after a crash (exit code 70).
  g_stopping = true;
  g_stop();
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
