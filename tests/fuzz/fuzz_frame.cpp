// The frame decoder on arbitrary bytes, as the master's channel reads them: every frame it
// accepts lies within the input, and its views (action, key, payload) within the frame.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ipc/frame.hpp"

using namespace clutch::ipc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  auto bytes = std::span(reinterpret_cast<const std::byte*>(data), size);
  std::size_t at = 0;
  while (at < size) {
    FrameHeader h;
    if (decode_header(bytes.subspan(at), 1 << 16, h) != DecodeStatus::kOk) break;
    if (h.frame_size() > size - at) __builtin_trap();
    const char* begin = reinterpret_cast<const char*>(bytes.data() + at);
    const char* end = begin + h.frame_size();
    FrameView v = view_frame(h, bytes.data() + at);
    for (std::string_view part : {v.action, v.key, v.payload}) {
      if (!part.empty() && (part.data() < begin || part.data() + part.size() > end))
        __builtin_trap();
    }
    at += h.frame_size();
  }
  return 0;
}
