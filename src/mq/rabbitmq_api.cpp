#include "mq/rabbitmq_api.hpp"

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>
#include <string>

namespace clutch::mq {
namespace {

RabbitMq load() {
  // The soname the build was made against (CMakeLists.txt): its ABI is what the header says.
  void* lib = dlopen(CLUTCH_RABBITMQ_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    throw std::runtime_error(std::string("AMQP needs rabbitmq-c (" CLUTCH_RABBITMQ_SONAME
                                         ", Debian package librabbitmq4): ") +
                             (why ? why : "not found"));
  }
  RabbitMq api;
#define CLUTCH_RABBITMQ_RESOLVE(name)                                           \
  api.name = reinterpret_cast<decltype(api.name)>(dlsym(lib, #name));           \
  if (api.name == nullptr) {                                                    \
    dlclose(lib);                                                               \
    throw std::runtime_error("AMQP: " CLUTCH_RABBITMQ_SONAME " has no " #name); \
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
