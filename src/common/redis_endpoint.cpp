#include "common/redis_endpoint.hpp"

#include <fmt/format.h>

#include <charconv>

namespace clutch {

std::string parse_redis_endpoint(std::string_view url, RedisEndpoint& out, std::string_view& rest) {
  constexpr std::string_view kScheme = "redis://";
  out = RedisEndpoint{};  // a port left out is the default, whatever `out` held
  if (url.rfind(kScheme, 0) != 0) return "it must start with redis://";
  std::string_view after = url.substr(kScheme.size());
  std::size_t slash = after.find('/');
  std::string_view address = after.substr(0, slash);
  rest = slash == std::string_view::npos ? std::string_view() : after.substr(slash + 1);
  std::size_t colon = address.rfind(':');
  out.host = std::string(address.substr(0, colon));
  if (colon != std::string_view::npos) {
    std::string_view port = address.substr(colon + 1);
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), out.port);
    if (ec != std::errc{} || end != port.data() + port.size() || out.port <= 0 ||
        out.port > 65535) {
      return fmt::format("bad port '{}'", port);
    }
  }
  if (out.host.empty()) return "no host";
  return "";
}

}  // namespace clutch
