#include "mq/rabbitmq_api.hpp"

#include <dlfcn.h>

#include <cstdlib>

#include <mutex>
#include <stdexcept>
#include <string>

namespace clutch::mq {
namespace {

RabbitMq load() {
  // The soname the build was made against (CMakeLists.txt), found where the dynamic linker looks;
  // CLUTCH_RABBITMQ_LIBRARY names another file of the same ABI (a rabbitmq-c built elsewhere).
  const char* chosen = std::getenv("CLUTCH_RABBITMQ_LIBRARY");
  std::string name = chosen != nullptr && *chosen ? chosen : CLUTCH_RABBITMQ_SONAME;
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    throw std::runtime_error("AMQP needs rabbitmq-c (" + name +
                             "; Debian package librabbitmq4, or set CLUTCH_RABBITMQ_LIBRARY): " +
                             (why ? why : "not found"));
  }
  RabbitMq api;
#define CLUTCH_RABBITMQ_RESOLVE(fn)                             \
  api.fn = reinterpret_cast<decltype(api.fn)>(dlsym(lib, #fn)); \
  if (api.fn == nullptr) {                                      \
    dlclose(lib);                                               \
    throw std::runtime_error("AMQP: " + name + " has no " #fn); \
  }
  CLUTCH_RABBITMQ_FUNCTIONS(CLUTCH_RABBITMQ_RESOLVE)
#undef CLUTCH_RABBITMQ_RESOLVE
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

const RabbitMq& rabbitmq() {
  static std::mutex mutex;
  static RabbitMq api;
  static bool loaded = false;
  std::lock_guard lock(mutex);
  if (!loaded) {
    api = load();
    loaded = true;
  }
  return api;
}

}  // namespace clutch::mq
