// Libraries loaded when first used instead of at every process's exec (rabbitmq-c, SQLite,
// hiredis).
//
// Each library linked at exec maps its pages and dirties its relocations in every process: the
// master, the agent and every worker, though only a process with that kind of queue calls it.
// Loaded on demand, the cost is paid by the processes that use it (issue 13's memory figures).
#pragma once

#include <atomic>
#include <mutex>
#include <string>

namespace clutch {

struct SharedLibrary {
  const char* soname;        // the one the build was made against (CMakeLists.txt)
  const char* override_env;  // names another file of the same ABI (a build made elsewhere)
  const char* needed_by;     // "AMQP needs rabbitmq-c", the start of a missing library's error
  const char* install_hint;  // "Debian package librabbitmq4"
  const char* subsystem;     // "AMQP", the start of a missing function's error
};

// dlopen()s the library (RTLD_NOW | RTLD_LOCAL). Throws std::runtime_error naming the file, how
// to get it and the loader's reason.
void* open_shared_library(const SharedLibrary& library);

// The address of `function` in `handle`; throws std::runtime_error naming what is missing (the
// handle is closed then: a library without it is not the ABI that was built against).
void* shared_library_function(void* handle, const SharedLibrary& library, const char* function);

// The table `load` builds, built on the first call (thread-safe). A call after a failed load
// tries again, so installing the library fixes a running process.
template <class Table, Table (*load)()>
const Table& load_once() {
  static std::mutex mutex;
  static Table table;
  static std::atomic<bool> loaded{false};
  if (loaded.load(std::memory_order_acquire)) return table;  // no lock once loaded
  std::lock_guard lock(mutex);
  if (!loaded.load(std::memory_order_relaxed)) {
    table = load();
    loaded.store(true, std::memory_order_release);
  }
  return table;
}

}  // namespace clutch

// Declares a library's table, a struct with one member per name in the X-macro list FUNCTIONS
// (a pointer of the type of the function of that name its header declares), and
// `const Table& accessor()`: the library, loaded on the first call (thread-safe, no lock once
// loaded). It throws std::runtime_error naming the library and what is missing if it cannot be
// loaded; a later call tries again.
#define CLUTCH_LIBRARY_MEMBER(name) decltype(&::name) name = nullptr;
#define CLUTCH_SHARED_LIBRARY(Table, FUNCTIONS, accessor) \
  struct Table {                                          \
    FUNCTIONS(CLUTCH_LIBRARY_MEMBER)                      \
  };                                                      \
  const Table& accessor();

// Defines accessor(), which opens `shared_library` (a SharedLibrary) and fills every member.
#define CLUTCH_LIBRARY_RESOLVE(name) \
  table.name =                       \
      reinterpret_cast<decltype(table.name)>(shared_library_function(handle, library, #name));
#define CLUTCH_SHARED_LIBRARY_LOADER(Table, FUNCTIONS, accessor, shared_library) \
  namespace {                                                                    \
  Table load_##Table() {                                                         \
    const ::clutch::SharedLibrary& library = shared_library;                     \
    void* handle = ::clutch::open_shared_library(library);                       \
    Table table;                                                                 \
    FUNCTIONS(CLUTCH_LIBRARY_RESOLVE)                                            \
    return table;                                                                \
  }                                                                              \
  }                                                                              \
  const Table& accessor() {                                                      \
    return ::clutch::load_once<Table, load_##Table>();                           \
  }
