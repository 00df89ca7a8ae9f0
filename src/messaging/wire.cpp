#include "messaging/wire.hpp"

namespace clutch::messaging {

std::string_view to_string(Route route) {
  switch (route) {
    case Route::kBroadcast:
      return "broadcast";
    case Route::kApp:
      return "send_to_app";
    case Route::kOthers:
      return "send_to_others";
    case Route::kAgent:
      return "send_to_agent";
    case Route::kRandom:
      return "send_random";
    case Route::kPid:
      return "send_to";
    case Route::kNone:
      break;
  }
  return "none";
}

}  // namespace clutch::messaging
