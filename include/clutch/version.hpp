// The version of the clutch runtime.
#pragma once

namespace clutch {
inline constexpr const char* kVersion = "0.1.0";
}
