#include "common/shared_library.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <stdexcept>

namespace clutch {
namespace {

std::string file_of(const SharedLibrary& library) {
  const char* chosen = std::getenv(library.override_env);
  return chosen != nullptr && *chosen ? chosen : library.soname;
}

}  // namespace

void* open_shared_library(const SharedLibrary& library) {
  std::string file = file_of(library);
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw std::runtime_error(std::string(library.needed_by) + " (" + file + "; " +
                             library.install_hint + ", or set " + library.override_env +
                             "): " + (why ? why : "not found"));
  }
  return handle;  // stays loaded for the life of the process
}

void* shared_library_function(void* handle, const SharedLibrary& library, const char* function) {
  void* address = dlsym(handle, function);
  if (address == nullptr) {
    dlclose(handle);
    throw std::runtime_error(std::string(library.subsystem) + ": " + file_of(library) + " has no " +
                             function);
  }
  return address;
}

}  // namespace clutch
