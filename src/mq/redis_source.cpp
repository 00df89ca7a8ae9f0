#include "mq/redis_source.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>

#include "clutch/config.hpp"
#include "common/hiredis_api.hpp"
#include "common/host_name.hpp"
#include "common/redis_connection.hpp"
#include "mq/url_query.hpp"

namespace clutch::mq {
namespace {

constexpr timeval kConnectTimeout{1, 0};

}  // namespace

bool stream_id_less(std::string_view a, std::string_view b) {
  // "MS-SEQ", both parts decimal; an empty id sorts first.
  auto parts = [](std::string_view id) {
    std::pair<uint64_t, uint64_t> out{0, 0};
    std::size_t dash = id.find('-');
    std::from_chars(id.data(), id.data() + std::min(dash, id.size()), out.first);
    if (dash != std::string_view::npos) {
      std::from_chars(id.data() + dash + 1, id.data() + id.size(), out.second);
    }
    return out;
  };
  if (a.empty()) return !b.empty();
  if (b.empty()) return false;
  return parts(a) < parts(b);
}

RedisUrl parse_redis_url(const std::string& url) {
  auto fail = [&](const std::string& why) {
    return ConfigError(fmt::format(
        "mq: bad Redis URL '{}': {} (expected redis://HOST:PORT/STREAM?group=G)", url, why));
  };
  RedisEndpoint where;
  std::string_view path;
  if (std::string why = parse_redis_endpoint(url, where, path); !why.empty()) throw fail(why);
  std::string_view query;
  if (auto q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  if (path.empty()) throw fail("no stream name after the address");
  RedisUrl out;
  out.host = std::move(where.host);
  out.port = where.port;
  out.stream = std::string(path);
  if (auto g = query_value(query, "group"); !g.empty()) out.group = g;
  out.consumer = query_value(query, "consumer");
  out.consumer_given = !out.consumer.empty();
  if (out.consumer.empty()) out.consumer = "clutch-" + host_name();
  return out;
}

RedisSource::RedisSource(RedisUrl url, std::chrono::milliseconds visibility_timeout)
    : redis_(hiredis()), url_(std::move(url)), visibility_timeout_(visibility_timeout) {
  // No connection yet: the first use connects, blocking for a producer, non-blocking for the
  // agent's consumer (avoid_blocking), so a broker that is down or unreachable at start never
  // delays the cluster's start; the consumer reports it and keeps retrying. A bad URL never gets
  // here (parse_redis_url throws ConfigError).
}

RedisSource::~RedisSource() {
  if (ctx_ != nullptr) redis_.redisFree(ctx_);
  if (connecting_ != nullptr) redis_.redisFree(connecting_);
}

void RedisSource::connect() {
  // Called only without a connection (connection_lost has already queued what was in flight).
  auto now = Clock::now();
  if (connecting_ == nullptr) {
    if (now < next_connect_) {
      throw QueueUnavailable(
          fmt::format("redis {}:{}: not connected; waiting to reconnect", url_.host, url_.port));
    }
    if (!non_blocking_) {
      std::string why;
      redisContext* c =
          redis_connect_blocking(redis_, {url_.host, url_.port}, kConnectTimeout, why);
      if (c == nullptr) connect_failed(nullptr, why);
      return connected(c);
    }
    connecting_ = redis_.redisConnectNonBlock(url_.host.c_str(), url_.port);
    connecting_since_ = now;
    if (connecting_ == nullptr || connecting_->err != 0) {
      redisContext* c = std::exchange(connecting_, nullptr);
      connect_failed(c, c != nullptr ? c->errstr : "out of memory");
    }
  }
  // Non-blocking: look whether the handshake is done, and come back on a later call if not, so
  // the agent's loop (schedules, messages) never waits for a broker that does not answer.
  pollfd p{connecting_->fd, POLLOUT, 0};
  if (::poll(&p, 1, 0) == 0) {
    if (now - connecting_since_ >= std::chrono::seconds(kConnectTimeout.tv_sec)) {
      connect_failed(std::exchange(connecting_, nullptr), "connection timed out");
    }
    throw QueueUnavailable(fmt::format("redis {}:{}: connecting", url_.host, url_.port));
  }
  int error = 0;
  socklen_t length = sizeof error;
  getsockopt(connecting_->fd, SOL_SOCKET, SO_ERROR, &error, &length);
  if (error != 0) connect_failed(std::exchange(connecting_, nullptr), std::strerror(error));
  // Connected: from here on the context is used with hiredis's blocking calls and timeouts.
  redisContext* c = std::exchange(connecting_, nullptr);
  int flags = fcntl(c->fd, F_GETFL);
  fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK);
  c->flags |= REDIS_BLOCK;
  connected(c);
}

void RedisSource::connect_failed(redisContext* c, const std::string& why) {
  if (c != nullptr) redis_.redisFree(c);
  next_connect_ = Clock::now() + reconnect_delay_;
  spdlog::warn("redis {}:{}: cannot connect ({}); next attempt in {} ms", url_.host, url_.port, why,
               reconnect_delay_.count());
  reconnect_delay_ = std::min(reconnect_delay_ * 2, std::chrono::milliseconds(5000));
  throw std::runtime_error(
      fmt::format("redis {}:{}: cannot connect: {}", url_.host, url_.port, why));
}

void RedisSource::connected(redisContext* c) {
  redis_.redisSetTimeout(c, timeval{2, 0});
  // hiredis frees its read buffer whenever it empties past 16 KiB; one batch of entries is bigger
  // than that, so without this every read reallocated and regrew it (malloc was the agent's top
  // cost in bench/mq). The buffer stays the size of the largest reply.
  c->reader->maxbuf = 0;
  arena_.attach(c->reader);  // replies carved from reused blocks, not malloc'd one by one
  ctx_ = c;
  reconnect_delay_ = std::chrono::milliseconds(100);
  if (was_connected_) spdlog::info("redis {}:{}: reconnected", url_.host, url_.port);
  was_connected_ = true;
  ensure_group();
  flush_unsent_acks();
}

void RedisSource::ensure_group() {
  Reply r = hold(static_cast<redisReply*>(redis_.redisCommand(
      ctx_, "XGROUP CREATE %s %s 0 MKSTREAM", url_.stream.c_str(), url_.group.c_str())));
  if (r == nullptr) throw std::runtime_error("redis: connection lost while creating the group");
  if (r->type == REDIS_REPLY_ERROR &&
      std::string_view(r->str).find("BUSYGROUP") == std::string_view::npos) {
    throw std::runtime_error(fmt::format("redis: XGROUP CREATE: {}", r->str));
  }
}

redisReply* RedisSource::command(const std::vector<std::string_view>& args) {
  if (ctx_ == nullptr) connect();
  collect_outstanding();  // replies come in order: a prefetch's comes before this command's
  append_argv(args);
  void* raw = nullptr;
  if (redis_.redisGetReply(ctx_, &raw) != REDIS_OK) connection_lost("running a command");
  auto* r = static_cast<redisReply*>(raw);
  if (r->type == REDIS_REPLY_ERROR) {
    std::string why = r->str;
    arena_.release(r);
    throw std::runtime_error("redis: " + why);
  }
  return r;
}

void RedisSource::forget_outstanding() {
  if (acks_in_flight_) {
    unsent_acks_.insert(unsent_acks_.end(), acks_sending_.begin(), acks_sending_.end());
  }
  // A read whose reply was lost may have been applied: its entries are now pending for this
  // consumer and were never handed out. They are newer than anything seen so far, so re-reading
  // the pending list after the newest seen id finds exactly them (none that workers hold).
  if (read_in_flight_) lost_a_read_ = true;
  acks_sending_.clear();
  acks_in_flight_ = read_in_flight_ = false;
}

void RedisSource::connection_lost(const char* doing) {
  std::string why = ctx_->errstr;
  redis_.redisFree(ctx_);
  ctx_ = nullptr;
  forget_outstanding();  // acks to resend, a lost read to re-read, once connected again
  next_connect_ = Clock::now() + reconnect_delay_;
  spdlog::warn("redis {}:{}: connection lost while {} ({}); reconnecting with back-off", url_.host,
               url_.port, doing, why);
  throw std::runtime_error(
      fmt::format("redis {}:{}: connection lost: {}", url_.host, url_.port, why));
}

void RedisSource::append_argv(const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  redis_.redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lengths.data());
}

bool RedisSource::append_unsent_acks() {
  if (unsent_acks_.empty()) return false;
  acks_sending_.swap(unsent_acks_);
  unsent_acks_.clear();
  std::vector<std::string_view> args = {"XACK", url_.stream, url_.group};
  args.insert(args.end(), acks_sending_.begin(), acks_sending_.end());
  append_argv(args);
  acks_in_flight_ = true;
  return true;
}

void RedisSource::read_ack_reply() {
  void* raw = nullptr;
  if (redis_.redisGetReply(ctx_, &raw) != REDIS_OK) connection_lost("acknowledging");
  acks_in_flight_ = false;
  Reply r = hold(static_cast<redisReply*>(raw));
  if (r->type == REDIS_REPLY_ERROR) {
    // Not a connection problem (e.g. the group was deleted): retrying the same XACK would fail
    // the same way. The entries stay pending and come back by XAUTOCLAIM.
    spdlog::error("redis: XACK of {} entries failed: {}", acks_sending_.size(), r->str);
  }
  acks_sending_.clear();
}

std::size_t RedisSource::read_group_reply(std::vector<QueueMessage>& out) {
  void* raw = nullptr;
  if (redis_.redisGetReply(ctx_, &raw) != REDIS_OK) connection_lost("reading");
  read_in_flight_ = false;
  Reply r = hold(static_cast<redisReply*>(raw));
  if (r->type == REDIS_REPLY_ERROR) throw std::runtime_error(std::string("redis: ") + r->str);
  std::size_t before = out.size();
  if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->elements >= 2) {
    read_entries(r->element[0]->element[1], out);
  }
  return out.size() - before;
}

void RedisSource::collect_outstanding() {
  if (acks_in_flight_) read_ack_reply();
  if (read_in_flight_) {
    std::vector<QueueMessage> entries;
    last_read_full_ = read_group_reply(entries) == prefetch_count_;
    for (QueueMessage& m : entries) prefetched_.push_back(std::move(m));
  }
}

void RedisSource::send_prefetch(std::size_t count) {
  append_unsent_acks();
  std::string n = std::to_string(count);
  append_argv(
      {"XREADGROUP", "GROUP", url_.group, url_.consumer, "COUNT", n, "STREAMS", url_.stream, ">"});
  read_in_flight_ = true;
  prefetch_count_ = count;
  // Sent now, read by the next fetch: Redis works on it while the agent hands out this batch.
  int done = 0;
  while (done == 0) {
    if (redis_.redisBufferWrite(ctx_, &done) != REDIS_OK) connection_lost("sending a read");
  }
}

void RedisSource::flush_unsent_acks() {
  if (append_unsent_acks()) read_ack_reply();
}

void RedisSource::flush() {
  if (ctx_ != nullptr) collect_outstanding();
  if (unsent_acks_.empty()) return;
  if (ctx_ == nullptr) return connect();  // sends them, or throws and keeps them for later
  flush_unsent_acks();
}

void RedisSource::read_entries(redisReply* entries, std::vector<QueueMessage>& out) {
  if (entries == nullptr || entries->type != REDIS_REPLY_ARRAY) return;
  std::size_t first = out.size();
  out.reserve(out.size() + entries->elements);
  for (std::size_t i = 0; i < entries->elements; ++i) {
    redisReply* entry = entries->element[i];
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2) continue;
    QueueMessage m;
    m.id.assign(entry->element[0]->str, entry->element[0]->len);
    redisReply* fields = entry->element[1];
    bool has_body = false;
    if (fields->type == REDIS_REPLY_ARRAY) {
      for (std::size_t f = 0; f + 1 < fields->elements; f += 2) {
        std::string_view key(fields->element[f]->str, fields->element[f]->len);
        std::string_view value(fields->element[f + 1]->str, fields->element[f + 1]->len);
        if (key == "body" && !has_body) {
          m.body.assign(value);
          has_body = true;
        } else {
          m.headers.emplace_back(key, value);
        }
      }
    }
    if (!has_body) bodiless_.insert(m.id);
    if (auto it = attempts_.find(m.id); it != attempts_.end()) m.attempts = it->second;
    out.push_back(std::move(m));
  }
  // Both XREADGROUP and XAUTOCLAIM return entries in id order: the last one is the newest.
  if (out.size() > first && stream_id_less(newest_seen_, out.back().id))
    newest_seen_ = out.back().id;
}

void RedisSource::autoclaim(std::vector<QueueMessage>& out, std::size_t max) {
  auto now = Clock::now();
  if (now < next_autoclaim_) return;
  next_autoclaim_ = now + std::max(visibility_timeout_ / 4, std::chrono::milliseconds(1000));
  std::string idle = std::to_string(visibility_timeout_.count());
  std::string count = std::to_string(max);
  Reply r = hold(
      command({"XAUTOCLAIM", url_.stream, url_.group, url_.consumer, idle, "0-0", "COUNT", count}));
  if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
    std::vector<QueueMessage> claimed;
    read_entries(r->element[1], claimed);
    if (!claimed.empty()) {
      spdlog::info("redis: claimed {} entries left pending by a dead consumer", claimed.size());
    }
    for (auto& m : claimed) out.push_back(std::move(m));
  }
}

std::vector<QueueMessage> RedisSource::fetch(std::size_t max) {
  std::vector<QueueMessage> out;
  out.reserve(max);
  while (!taken_over_.empty() && out.size() < max) {
    out.push_back(std::move(taken_over_.back()));
    taken_over_.pop_back();
  }
  auto now = Clock::now();
  while (!delayed_.empty() && delayed_.front().due <= now && out.size() < max) {
    out.push_back(std::move(delayed_.front().message));
    delayed_.pop_front();
  }
  try {
    fetch_from_redis(out, max);
  } catch (const std::exception&) {
    // What was already taken (retries due, entries read ahead) is handed out rather than
    // dropped with the exception; the broker's error comes back on the next call.
    if (out.empty()) throw;
  }
  if (!bodiless_.empty()) dead_letter_bodiless(out);
  return out;
}

void RedisSource::dead_letter_bodiless(std::vector<QueueMessage>& out) {
  std::vector<QueueMessage> kept;
  kept.reserve(out.size());
  for (QueueMessage& m : out) {
    if (!bodiless_.contains(m.id)) {
      kept.push_back(std::move(m));
      continue;
    }
    std::string fields;
    for (const auto& [key, value] : m.headers)
      fields.append(fields.empty() ? "" : ", ").append(key);
    std::string why = fmt::format("the entry has no 'body' field (its fields: {})",
                                  fields.empty() ? "none" : fields);
    try {
      add_dead_letter(m, why, false);
      bodiless_.erase(m.id);
      spdlog::error("redis: entry {} of {} dead-lettered: {}", m.id, url_.stream, why);
    } catch (const std::exception& e) {
      // Still pending in the group: it comes back (this consumer's pending list after a
      // reconnect, or XAUTOCLAIM after the visibility timeout) and is tried again then.
      spdlog::error("redis: entry {} has no 'body' field and could not be dead-lettered: {}", m.id,
                    e.what());
    }
  }
  out = std::move(kept);
}

void RedisSource::fetch_from_redis(std::vector<QueueMessage>& out, std::size_t max) {
  if (ctx_ != nullptr) collect_outstanding();  // the previous fetch's prefetch, likely answered
  while (!prefetched_.empty() && out.size() < max) {
    out.push_back(std::move(prefetched_.front()));
    prefetched_.pop_front();
  }
  if (out.size() < max) read_now(out, max);
  // The last read came back full, so the stream has more: ask for the next batch now, so it is on
  // its way while the consumer hands this one out (one batch ahead bounds the agent's memory).
  if (ctx_ != nullptr && last_read_full_ && !read_own_pending_ && prefetched_.empty() &&
      !read_in_flight_) {
    send_prefetch(max);
  }
}

void RedisSource::read_now(std::vector<QueueMessage>& out, std::size_t max) {
  if (ctx_ == nullptr) connect();
  std::string count = std::to_string(max - out.size());
  // After a restart, our own pending entries first (a dead predecessor's in-flight messages).
  // Reading our pending list walks forward from a cursor: "0" would return the same entries again.
  if (lost_a_read_ && !read_own_pending_) {
    read_own_pending_ = true;
    pending_cursor_ = newest_seen_.empty() ? "0" : newest_seen_;
  }
  lost_a_read_ = false;
  std::string from = read_own_pending_ ? pending_cursor_ : ">";
  // One round trip: the gathered acks, then the read.
  bool acking = append_unsent_acks();
  append_argv({"XREADGROUP", "GROUP", url_.group, url_.consumer, "COUNT", count, "STREAMS",
               url_.stream, from});
  read_in_flight_ = true;
  if (acking) read_ack_reply();
  std::size_t before = out.size();
  std::size_t got = read_group_reply(out);
  if (read_own_pending_) {
    if (got == 0) {
      read_own_pending_ = false;
    } else {
      pending_cursor_ = out.back().id;
      spdlog::info(
          "redis: re-reading {} pending entries (left by a previous agent, or by a read "
          "whose reply the connection lost)",
          got);
    }
  }
  last_read_full_ = got == max - before;
  if (out.size() < max) autoclaim(out, max - out.size());
}

void RedisSource::ack(const QueueMessage& m) {
  attempts_.erase(m.id);
  unsent_acks_.push_back(m.id);
  flush();
}

void RedisSource::ack_many(const std::vector<QueueMessage>& messages) {
  for (const QueueMessage& m : messages) {
    attempts_.erase(m.id);
    unsent_acks_.push_back(m.id);
  }
  // Bounded: past this many, they go out now rather than wait for the next read.
  constexpr std::size_t kMaxDeferredAcks = 1024;
  if (unsent_acks_.size() >= kMaxDeferredAcks) flush();
}

void RedisSource::retry(const QueueMessage& m, std::chrono::milliseconds delay, std::string_view) {
  QueueMessage again = m;
  again.attempts = m.attempts + 1;
  attempts_[m.id] = again.attempts;
  delayed_.push_back(Delayed{Clock::now() + delay, std::move(again)});
  std::stable_sort(delayed_.begin(), delayed_.end(),
                   [](const Delayed& a, const Delayed& b) { return a.due < b.due; });
}

void RedisSource::release(const QueueMessage& m) {
  delayed_.push_front(Delayed{Clock::now(), m});
}

void RedisSource::dead_letter(const QueueMessage& m, std::string_view error) {
  add_dead_letter(m, error, true);
}

void RedisSource::add_dead_letter(const QueueMessage& m, std::string_view error, bool has_body) {
  // The dead entry: body (if the entry had one), id (the entry's id in the stream), attempts,
  // error, and each of the entry's own fields as field.NAME, so that a requeue restores it.
  std::string dead = url_.stream + ":dead";
  std::string attempts = std::to_string(m.attempts + 1);
  std::vector<std::string> prefixed;
  prefixed.reserve(m.headers.size());
  std::vector<std::string_view> args = {"XADD", dead, "*"};
  if (has_body) args.insert(args.end(), {"body", m.body});
  args.insert(args.end(), {"id", m.id, "attempts", attempts, "error", error});
  for (const auto& [key, value] : m.headers) {
    prefixed.push_back("field." + key);
    args.insert(args.end(), {prefixed.back(), value});
  }
  Reply added = hold(command(args));
  attempts_.erase(m.id);
  Reply acked = hold(command({"XACK", url_.stream, url_.group, m.id}));
}

void RedisSource::publish(std::string_view body) {
  publish_with_headers(body, {});
}

void RedisSource::publish_with_headers(std::string_view body, const QueueHeaders& headers) {
  std::vector<std::string_view> args = {"XADD", url_.stream, "*", "body", body};
  for (const auto& [key, value] : headers) {
    if (key == "body") throw std::runtime_error("a header may not be called 'body'");
    args.insert(args.end(), {key, value});
  }
  Reply r = hold(command(args));
}

std::size_t RedisSource::pending() {
  Reply r = hold(command({"XPENDING", url_.stream, url_.group}));
  return r->type == REDIS_REPLY_ARRAY && r->elements > 0
             ? static_cast<std::size_t>(r->element[0]->integer)
             : 0;
}

std::size_t RedisSource::dead_letters() {
  Reply r = hold(command({"XLEN", url_.stream + ":dead"}));
  return static_cast<std::size_t>(r->integer);
}

namespace {

std::string reply_text(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
             ? std::string(r->str, r->len)
             : std::string();
}

// The milliseconds part of a stream entry id ("1700000000000-3"); 0 if it has none.
int64_t id_millis(std::string_view id) {
  int64_t ms = 0;
  std::from_chars(id.data(), id.data() + id.find('-'), ms);
  return ms;
}

// Whether `id` has a stream id's shape ("MS-SEQ" or "MS"): another string is no dead letter's id,
// and Redis would refuse the whole command for it.
bool looks_like_stream_id(std::string_view id) {
  auto dash = id.find('-');
  auto digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return dash == std::string_view::npos ? digits(id)
                                        : digits(id.substr(0, dash)) && digits(id.substr(dash + 1));
}

// One XRANGE entry of STREAM:dead as a dead letter (the layout add_dead_letter writes).
struct DeadEntry {
  DeadLetter letter;
  bool has_body = false;  // an entry dead-lettered for having none goes back without one
};

DeadEntry dead_entry(const redisReply* entry) {
  DeadEntry e;
  DeadLetter& d = e.letter;
  d.id = reply_text(entry->element[0]);
  d.failed_at_ms = id_millis(d.id);
  const redisReply* fields = entry->element[1];
  constexpr std::string_view kField = "field.";
  for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
    std::string key = reply_text(fields->element[i]);
    std::string value = reply_text(fields->element[i + 1]);
    if (key == "body") {
      d.body = std::move(value);
      e.has_body = true;
    } else if (key == "id") {
      d.message_id = std::move(value);
    } else if (key == "error") {
      d.error = std::move(value);
    } else if (key == "attempts") {
      d.attempts = std::atoi(value.c_str());
    } else if (key.starts_with(kField)) {
      d.headers.emplace_back(key.substr(kField.size()), std::move(value));
    }
  }
  return e;
}

}  // namespace

int64_t RedisSource::oldest_age_ms() {
  // The oldest entry not acknowledged: the group's oldest pending one, else the first one after
  // what the group has read.
  int64_t oldest = 0;
  Reply summary = hold(command({"XPENDING", url_.stream, url_.group}));
  if (summary->type == REDIS_REPLY_ARRAY && summary->elements >= 2 &&
      summary->element[1]->type == REDIS_REPLY_STRING) {
    oldest = id_millis(reply_text(summary->element[1]));
  }
  if (oldest == 0) {
    Reply groups = hold(command({"XINFO", "GROUPS", url_.stream}));
    std::string last;
    for (std::size_t g = 0; g < groups->elements; ++g) {
      const redisReply* group = groups->element[g];
      bool ours = false;
      std::string delivered;
      for (std::size_t i = 0; i + 1 < group->elements; i += 2) {
        std::string key = reply_text(group->element[i]);
        if (key == "name") ours = reply_text(group->element[i + 1]) == url_.group;
        if (key == "last-delivered-id") delivered = reply_text(group->element[i + 1]);
      }
      if (ours) last = delivered;
    }
    Reply next = hold(
        command({"XRANGE", url_.stream, "(" + (last.empty() ? "0-0" : last), "+", "COUNT", "1"}));
    if (next->type == REDIS_REPLY_ARRAY && next->elements == 1)
      oldest = id_millis(reply_text(next->element[0]->element[0]));
  }
  if (oldest == 0) return -1;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  return std::max<int64_t>(0, now - oldest);
}

std::vector<DeadLetter> RedisSource::list_dead(std::size_t max) {
  Reply r =
      hold(command({"XRANGE", url_.stream + ":dead", "-", "+", "COUNT", std::to_string(max)}));
  std::vector<DeadLetter> out;
  for (std::size_t i = 0; i < r->elements; ++i) out.push_back(dead_entry(r->element[i]).letter);
  return out;
}

std::size_t RedisSource::requeue_dead(const std::vector<std::string>& ids) {
  std::string dead = url_.stream + ":dead";
  std::vector<DeadEntry> letters;
  if (ids.empty()) {
    Reply r = hold(command({"XRANGE", dead, "-", "+"}));
    for (std::size_t i = 0; i < r->elements; ++i) letters.push_back(dead_entry(r->element[i]));
  } else {
    for (const std::string& id : ids) {
      if (!looks_like_stream_id(id)) continue;
      Reply r = hold(command({"XRANGE", dead, id, id}));
      if (r->elements == 1) letters.push_back(dead_entry(r->element[0]));
    }
  }
  // Added before it is deleted: a crash between the two requeues it twice, never loses it.
  // Back as the producer wrote it: its body (if it had one) and its own fields.
  std::size_t moved = 0;
  for (const DeadEntry& e : letters) {
    const DeadLetter& d = e.letter;
    std::vector<std::string_view> args = {"XADD", url_.stream, "*"};
    if (e.has_body) args.insert(args.end(), {"body", d.body});
    for (const auto& [key, value] : d.headers) args.insert(args.end(), {key, value});
    if (args.size() == 3) args.insert(args.end(), {"body", ""});  // XADD needs a field
    Reply added = hold(command(args));
    Reply gone = hold(command({"XDEL", dead, d.id}));
    ++moved;
  }
  return moved;
}

std::size_t RedisSource::purge_dead(const std::vector<std::string>& ids) {
  std::string dead = url_.stream + ":dead";
  if (ids.empty()) {
    std::size_t n = dead_letters();
    Reply r = hold(command({"DEL", dead}));
    return n;
  }
  std::size_t removed = 0;
  for (const std::string& id : ids) {
    if (!looks_like_stream_id(id)) continue;
    Reply r = hold(command({"XDEL", dead, id}));
    removed += static_cast<std::size_t>(r->integer);
  }
  return removed;
}

void RedisSource::keep_alive() {
  if (ctx_ == nullptr) return;  // not connected: fetch reconnects; nothing to say meanwhile
  collect_outstanding();
  std::string ttl = std::to_string(kLivenessTtl.count());
  Reply set = hold(command({"SET", liveness_key(url_.consumer), "1", "PX", ttl}));
  // Other consumers of the group that have stopped renewing theirs: a whole instance that died.
  // Idle past the TTL too, so that one just starting (no key yet) is never taken for dead.
  Reply consumers = hold(command({"XINFO", "CONSUMERS", url_.stream, url_.group}));
  if (consumers->type != REDIS_REPLY_ARRAY) return;
  for (std::size_t c = 0; c < consumers->elements; ++c) {
    const redisReply* entry = consumers->element[c];
    std::string name;
    long long pending = 0, idle = 0;
    for (std::size_t f = 0; f + 1 < entry->elements; f += 2) {
      std::string key = reply_text(entry->element[f]);
      const redisReply* v = entry->element[f + 1];
      if (key == "name") name = reply_text(v);
      if (key == "pending") pending = v->integer;
      if (key == "idle") idle = v->integer;
    }
    if (name.empty() || name == url_.consumer || idle < kLivenessTtl.count()) continue;
    Reply alive = hold(command({"EXISTS", liveness_key(name)}));
    if (alive->integer != 0) continue;
    if (pending > 0) take_over(name);
    // Gone for good (its pending entries are ours now): keep the group's list tidy.
    Reply pending_left = hold(command({"XPENDING", url_.stream, url_.group, "-", "+", "1", name}));
    if (pending_left->elements == 0) {
      Reply deleted = hold(command({"XGROUP", "DELCONSUMER", url_.stream, url_.group, name}));
    }
  }
}

void RedisSource::take_over(const std::string& consumer) {
  std::size_t claimed = 0;
  for (int round = 0; round < 100; ++round) {  // bounded: 100 x 1,000 entries a call
    Reply ids = hold(command({"XPENDING", url_.stream, url_.group, "-", "+", "1000", consumer}));
    if (ids->type != REDIS_REPLY_ARRAY || ids->elements == 0) break;
    std::vector<std::string> args = {"XCLAIM", url_.stream, url_.group, url_.consumer, "0"};
    for (std::size_t i = 0; i < ids->elements; ++i)
      args.push_back(reply_text(ids->element[i]->element[0]));
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    Reply entries = hold(static_cast<redisReply*>(
        redis_.redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lengths.data())));
    if (!entries) connection_lost("claiming a dead consumer's entries");
    std::vector<QueueMessage> got;
    read_entries(entries.get(), got);
    claimed += got.size();
    // Entries deleted from the stream meanwhile come back as nil: nothing to hand out.
    for (auto& m : got) taken_over_.push_back(std::move(m));
    if (ids->elements < 1000) break;
  }
  if (claimed > 0) {
    spdlog::warn(
        "redis: consumer {} stopped renewing its liveness key: took over its {} unacknowledged "
        "entries",
        consumer, claimed);
  }
}

}  // namespace clutch::mq
