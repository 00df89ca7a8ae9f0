#include "mq/outbox_relay.hpp"

#include <spdlog/spdlog.h>

#include "common/off_loop_worker.hpp"
#include "mq/postgres_url.hpp"
#include "mq/url_query.hpp"

namespace clutch::mq {
namespace {

constexpr auto kSweepEvery = std::chrono::seconds(5);
constexpr std::size_t kSweepBatch = 100;

bool carries_headers(const std::string& url) {
  return url.rfind("redis://", 0) == 0 || url.rfind("amqp://", 0) == 0;
}

}  // namespace

std::string outbox_url_error(const std::string& url) {
  for (const char* scheme : {"sqlite:", "redis://", "amqp://"})
    if (url.rfind(scheme, 0) == 0 && url.size() > std::string_view(scheme).size()) return {};
  if (is_postgres_url(url)) return {};
  return "cannot publish to '" + redact_url(url) +
         "' (not sqlite:PATH, redis://, amqp:// or postgres://)";
}

OutboxRelay::OutboxRelay(Context& ctx, std::shared_ptr<OutboxStore> store, OpenStore open_remover,
                         std::string consumer)
    : ctx_(ctx),
      store_(std::move(store)),
      consumer_(std::move(consumer)),
      on_thread_(std::make_shared<ThreadState>()),
      thread_(std::make_unique<OffLoopWorker>(
          [&ctx](OffLoopWorker::Completion fn) { ctx.post(std::move(fn)); })) {
  on_thread_->open_remover = std::move(open_remover);
}

OutboxRelay::~OutboxRelay() = default;

void OutboxRelay::start() {
  std::weak_ptr<OutboxRelay> weak = shared_from_this();
  ctx_.set_interval(kSweepEvery, [weak] {
    if (auto self = weak.lock()) self->sweep();
  });
}

void OutboxRelay::sweep() {
  std::vector<OutboxEntry> stale;
  try {
    stale = store_->claim_stale(kSweepBatch);
  } catch (const std::exception& e) {
    spdlog::warn("mq {}: outbox: {}", consumer_, e.what());
    return;
  }
  if (!stale.empty())
    spdlog::info("mq {}: outbox: publishing {} message(s) staged more than {} s ago", consumer_,
                 stale.size(), kOutboxClaim.count());
  relay(std::move(stale));
}

void OutboxRelay::relay(std::vector<OutboxEntry> entries) {
  std::weak_ptr<OutboxRelay> weak = shared_from_this();
  for (OutboxEntry& e : entries) {
    if (!in_flight_.insert(e.id).second) continue;  // this worker is publishing it already
    thread_->run([state = on_thread_, e = std::move(e), weak]() -> OffLoopWorker::Completion {
      std::string error, not_removed;
      try {
        auto& queue = state->queues[e.url];
        if (!queue) queue = open_message_source(e.url);
        try {
          if (carries_headers(e.url))
            queue->publish_with_headers(e.body, {{std::string(kOutboxIdHeader), e.token}});
          else
            queue->publish(e.body);
        } catch (...) {
          queue.reset();  // made again for the next one
          throw;
        }
      } catch (const std::exception& ex) {
        error = ex.what();
      }
      if (error.empty()) {
        try {
          if (!state->remover) state->remover = state->open_remover();
          state->remover->remove(e.id);
        } catch (const std::exception& ex) {
          // Published, not removed: it is published again after its claim (at least once).
          state->remover.reset();
          not_removed = ex.what();
        }
      }
      return [weak, id = e.id, url = e.url, error, not_removed] {
        auto self = weak.lock();
        if (!self) return;
        self->in_flight_.erase(id);
        if (!error.empty())
          spdlog::warn("mq {}: outbox: publishing to '{}': {} (again in {} s)", self->consumer_,
                       redact_url(url), error, kOutboxClaim.count());
        if (!not_removed.empty())
          spdlog::warn("mq {}: outbox: published, not removed: {}", self->consumer_, not_removed);
      };
    });
  }
}

}  // namespace clutch::mq
