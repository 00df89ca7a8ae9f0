#include "mq/amqp_url.hpp"

#include <fmt/format.h>

#include <charconv>
#include <string_view>

#include "clutch/config.hpp"
#include "mq/url_query.hpp"

namespace clutch::mq {
namespace {

bool parse_int(std::string_view text, int low, int high, int& out) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < low || value > high)
    return false;
  out = value;
  return true;
}

}  // namespace

AmqpUrl parse_amqp_url(const std::string& url) {
  auto fail = [&](const std::string& why) {
    return ConfigError(fmt::format(
        "mq: bad AMQP URL '{}': {} (expected amqp://USER:PASS@HOST:PORT/VHOST?queue=Q)", url, why));
  };
  constexpr std::string_view kScheme = "amqp://";
  if (url.rfind(kScheme, 0) != 0) throw fail("it must start with amqp://");
  std::string_view rest = std::string_view(url).substr(kScheme.size()), query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string_view authority = rest, path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  AmqpUrl out;
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view credentials = authority.substr(0, at);
    authority = authority.substr(at + 1);
    std::string_view user = credentials, password;
    if (auto colon = credentials.find(':'); colon != std::string_view::npos) {
      user = credentials.substr(0, colon);
      password = credentials.substr(colon + 1);
    }
    if (!percent_decode(user, out.user) || !percent_decode(password, out.password))
      throw fail("a malformed %-escape in the user or password");
  }
  std::string_view host = authority;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:5672
    auto close = authority.find(']');
    if (close == std::string_view::npos) throw fail("an unclosed '[' in the host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':' || !parse_int(after.substr(1), 1, 65535, out.port))
        throw fail("the port must be a number from 1 to 65535");
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    if (!parse_int(authority.substr(colon + 1), 1, 65535, out.port))
      throw fail("the port must be a number from 1 to 65535");
  }
  if (!host.empty()) out.host = std::string(host);
  if (!path.empty() && !percent_decode(path, out.vhost))
    throw fail("a malformed %-escape in the vhost");
  out.queue = query_value(query, "queue");
  if (out.queue.empty()) throw fail("no queue (add ?queue=NAME)");
  out.dead_queue = query_value(query, "dead");
  if (out.dead_queue.empty()) out.dead_queue = out.queue + ".dead";
  if (out.dead_queue == out.queue) throw fail("dead= must name another queue than queue=");
  if (std::string p = query_value(query, "prefetch");
      !p.empty() && !parse_int(p, 1, 65535, out.prefetch))
    throw fail("prefetch must be a number from 1 to 65535");
  if (std::string h = query_value(query, "heartbeat");
      !h.empty() && !parse_int(h, 0, 3600, out.heartbeat_s))
    throw fail("heartbeat must be a number of seconds from 0 to 3600");
  return out;
}

}  // namespace clutch::mq
