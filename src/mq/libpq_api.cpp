#include "mq/libpq_api.hpp"

namespace clutch::mq {
namespace {

const SharedLibrary kLibpq{CLUTCH_LIBPQ_SONAME, "CLUTCH_LIBPQ_LIBRARY",
                           "a postgres:// queue or inbox needs libpq", "Debian package libpq5",
                           "libpq"};

}  // namespace

CLUTCH_SHARED_LIBRARY_LOADER(LibpqApi, CLUTCH_LIBPQ_FUNCTIONS, libpq_api, kLibpq)

}  // namespace clutch::mq
