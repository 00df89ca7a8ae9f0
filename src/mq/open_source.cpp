// open_message_source: the queue URL's scheme picks the source.
#include <fmt/format.h>

#include "clutch/config.hpp"
#include "mq/amqp_source.hpp"
#include "mq/postgres_source.hpp"
#include "mq/redis_source.hpp"
#include "mq/sqlite_source.hpp"
#include "mq/url_query.hpp"

namespace clutch {

std::unique_ptr<MessageSource> open_message_source(const std::string& url,
                                                   std::chrono::milliseconds visibility_timeout) {
  if (url.rfind("sqlite:", 0) == 0) {
    std::string path = url.substr(7);
    if (path.empty())
      throw ConfigError("mq: 'sqlite:' needs a file path, e.g. sqlite:/var/lib/app/queue.db");
    return std::make_unique<mq::SqliteSource>(path, visibility_timeout);
  }
  if (url.rfind("redis://", 0) == 0)
    return std::make_unique<mq::RedisSource>(mq::parse_redis_url(url), visibility_timeout);
  // The broker keeps an unacknowledged delivery for as long as the connection lives: there is no
  // visibility timeout to pass (a hung handler is the hang watchdog's business).
  if (url.rfind("amqp://", 0) == 0)
    return std::make_unique<mq::AmqpSource>(mq::parse_amqp_url(url));
  if (mq::is_postgres_url(url))
    return std::make_unique<mq::PostgresSource>(mq::parse_postgres_url(url), visibility_timeout);
  throw ConfigError(fmt::format(
      "mq: unsupported queue URL '{}' (supported: sqlite:PATH, redis://HOST:PORT/STREAM?group=G, "
      "amqp://USER:PASS@HOST:PORT/VHOST?queue=Q, postgres://USER:PASS@HOST:PORT/DB?table=T)",
      mq::redact_url(url)));
}

}  // namespace clutch
