#include "common/hiredis_api.hpp"

namespace clutch {
namespace {

const SharedLibrary kHiredis{CLUTCH_HIREDIS_SONAME, "CLUTCH_HIREDIS_LIBRARY", "Redis needs hiredis",
                             "Debian package libhiredis0.14", "Redis"};

}  // namespace

CLUTCH_SHARED_LIBRARY_LOADER(HiredisApi, CLUTCH_HIREDIS_FUNCTIONS, hiredis, kHiredis)

}  // namespace clutch
