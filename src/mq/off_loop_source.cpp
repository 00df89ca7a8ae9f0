#include "mq/off_loop_source.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "mq/ask_thread.hpp"

namespace clutch::mq {
namespace {

using namespace std::chrono_literals;

// How long the operator's commands and a producer's publish wait for the broker.
constexpr auto kWait = 10s;
// How often the thread reads the queue's figures (they ask the broker).
constexpr auto kFiguresEvery = 2s;

// What the caller and the thread share; the thread keeps it alive until it ends.
struct Shared {
  explicit Shared(std::unique_ptr<MessageSource> s) : inner(std::move(s)) {}
  std::unique_ptr<MessageSource> inner;  // touched by the thread only (after start)
  std::mutex mutex;
  std::condition_variable work, progress;
  std::deque<std::function<void()>> commands;
  uint64_t posted = 0, ran = 0;
  // Read ahead, not yet handed out: below `target`, the caller's largest fetch, the thread reads
  // `target` more (so at most twice that waits here), so that the next fetch finds messages waiting
  // rather than a read to wait for. (Like the sources' own read-ahead: what sits here was fetched
  // from the broker, and comes back to this consumer's successor if the process dies.)
  std::deque<QueueMessage> ready;
  std::size_t target = 0;
  bool dry = false;  // the last read found nothing: read again when the caller asks, not before
  std::function<void()> wake;   // tells the caller's loop that messages arrived (set_waker)
  bool caller_waiting = false;  // the caller's last fetch came back empty
  std::string error;            // the last read's failure, reported once by fetch()
  std::size_t pending = 0, dead_letters = 0;
  int64_t oldest_age_ms = -1;
  bool stopping = false, finished = false;
  // The caller asked for held acks to go out (flush). Done after the next read rather than as a
  // command before it: a read carries the acks the source holds (PostgreSQL's claim deletes
  // them in the same statement, Redis pipelines them with XREADGROUP), so a flush that meets a
  // read costs no statement of its own; without a read it goes at once.
  bool flush_wanted = false;
};

void flush_inner(Shared& s, std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  try {
    s.inner->flush();
  } catch (const QueueUnavailable&) {
    // Reconnecting: the source keeps its acks for the next connection.
  } catch (const std::exception& e) {
    spdlog::error("mq: {}", e.what());
  }
  lock.lock();
}

void run(const std::shared_ptr<Shared>& shared) {
  Shared& s = *shared;
  auto next_figures = std::chrono::steady_clock::now();
  std::unique_lock lock(s.mutex);
  while (true) {
    auto wants_read = [&] { return !s.dry && s.ready.size() < s.target; };
    s.work.wait_for(lock, 200ms, [&] {
      return s.stopping || !s.commands.empty() || s.flush_wanted || wants_read();
    });
    // Commands first, in order: acks travel before the next read asks for more.
    while (!s.commands.empty()) {
      auto command = std::move(s.commands.front());
      s.commands.pop_front();
      lock.unlock();
      try {
        command();
      } catch (const std::exception& e) {
        // Settling failures leave the message to the source's own recovery (held acks are sent
        // on reconnect, unsettled entries come back after the visibility timeout).
        spdlog::error("mq: {}", e.what());
      }
      lock.lock();
      ++s.ran;
      s.progress.notify_all();
    }
    bool flush = std::exchange(s.flush_wanted, false);
    if (s.stopping) {
      if (flush) flush_inner(s, lock);
      break;
    }
    if (wants_read()) {
      // Whole batches, even when the caller's last fetch took only what its window still had
      // room for: a read costs the broker about the same for 20 entries as for 256.
      std::size_t want = s.target;
      lock.unlock();
      std::vector<QueueMessage> got;
      std::string error;
      try {
        got = s.inner->fetch(want);
      } catch (const QueueUnavailable&) {
        // Reconnecting; the source logs its attempts.
      } catch (const std::exception& e) {
        error = e.what();
      }
      lock.lock();
      s.dry = got.empty();
      for (QueueMessage& m : got) s.ready.push_back(std::move(m));
      if (!s.ready.empty() && s.caller_waiting && s.wake) {
        s.caller_waiting = false;
        s.wake();  // under the lock: the destructor clears `wake` under it too
      }
      if (!error.empty()) s.error = std::move(error);
    }
    if (flush) flush_inner(s, lock);  // after the read: only what it did not carry
    if (std::chrono::steady_clock::now() >= next_figures) {
      next_figures = std::chrono::steady_clock::now() + kFiguresEvery;
      lock.unlock();
      try {
        std::size_t pending = s.inner->pending(), dead = s.inner->dead_letters();
        int64_t oldest = s.inner->oldest_age_ms();
        lock.lock();
        s.pending = pending;
        s.dead_letters = dead;
        s.oldest_age_ms = oldest;
      } catch (const std::exception&) {
        lock.lock();  // the broker is away: the figures keep their last values
      }
    }
  }
  // The inner source ends here, on this thread, not on whichever thread drops the last reference:
  // its own threads (PostgreSQL's listener) may hold one, and a thread cannot join itself.
  std::unique_ptr<MessageSource> inner = std::move(s.inner);
  lock.unlock();
  inner.reset();
  lock.lock();
  s.finished = true;
  s.progress.notify_all();
}

class OffLoopSource final : public MessageSource {
 public:
  explicit OffLoopSource(std::unique_ptr<MessageSource> inner)
      : shared_(std::make_shared<Shared>(std::move(inner))) {}

  ~OffLoopSource() override {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->stopping = true;
      shared_->wake = nullptr;
    }
    shared_->work.notify_all();
    if (!thread_.joinable()) return;
    // The thread runs the queued commands, then ends; a broker that hangs is not waited for.
    std::unique_lock lock(shared_->mutex);
    if (shared_->progress.wait_for(lock, 1s, [&] { return shared_->finished; })) {
      lock.unlock();
      thread_.join();
    } else {
      thread_.detach();  // it holds `shared_` and finishes on its own
    }
  }

  // Until start, calls go straight to the inner source (the consumer's setup, a producer).
  std::vector<QueueMessage> fetch(std::size_t max) override {
    start();
    std::vector<QueueMessage> out;
    std::string error;
    {
      std::lock_guard lock(shared_->mutex);
      while (!shared_->ready.empty() && out.size() < max) {
        out.push_back(std::move(shared_->ready.front()));
        shared_->ready.pop_front();
      }
      // Keep the largest batch the caller asks for read ahead (its window's residue is often
      // small); what this call could not have is there for a later one.
      shared_->target = std::max(shared_->target, max);
      shared_->dry = false;
      shared_->caller_waiting = out.empty();
      error = std::exchange(shared_->error, {});
    }
    shared_->work.notify_one();
    if (out.empty() && !error.empty()) throw std::runtime_error(error);
    return out;
  }
  void ack(const QueueMessage& message) override {
    post([m = message](MessageSource& s) { s.ack(m); });
  }
  void ack_many(const std::vector<QueueMessage>& messages) override {
    post([batch = messages](MessageSource& s) { s.ack_many(batch); });
  }
  void avoid_blocking() override { shared_->inner->avoid_blocking(); }
  void set_waker(std::function<void()> wake) override {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->wake = std::move(wake);
    }
    // The inner source's own wake-ups (PostgreSQL's LISTEN) make the thread read at once; it
    // tells the caller when the read found something.
    std::weak_ptr<Shared> weak = shared_;
    post([weak](MessageSource& s) {
      s.set_waker([weak] {
        auto shared = weak.lock();
        if (!shared) return;
        {
          std::lock_guard lock(shared->mutex);
          shared->dry = false;
        }
        shared->work.notify_one();
      });
    });
  }
  void flush() override {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->flush_wanted = true;
    }
    shared_->work.notify_one();
  }
  void close() override {
    bool flush;
    {
      std::lock_guard lock(shared_->mutex);
      flush = std::exchange(shared_->flush_wanted, false);
    }
    if (flush) post([](MessageSource& s) { s.flush(); });  // the acks go before the close
    post([](MessageSource& s) { s.close(); });
    std::unique_lock lock(shared_->mutex);
    uint64_t target = shared_->posted;
    shared_->progress.wait_for(lock, 1s, [&] { return shared_->ran >= target; });
  }
  void retry(const QueueMessage& message, std::chrono::milliseconds delay,
             std::string_view error) override {
    post([m = message, delay, e = std::string(error)](MessageSource& s) { s.retry(m, delay, e); });
  }
  void release(const QueueMessage& message) override {
    post([m = message](MessageSource& s) { s.release(m); });
  }
  void dead_letter(const QueueMessage& message, std::string_view error) override {
    post([m = message, e = std::string(error)](MessageSource& s) { s.dead_letter(m, e); });
  }
  void publish(std::string_view body) override {
    ask<bool>([b = std::string(body)](MessageSource& s) {
      s.publish(b);
      return true;
    });
  }
  void publish_with_headers(std::string_view body, const QueueHeaders& headers) override {
    ask<bool>([b = std::string(body), headers](MessageSource& s) {
      s.publish_with_headers(b, headers);
      return true;
    });
  }
  void recover_in_flight() override { shared_->inner->recover_in_flight(); }
  std::size_t pending() override {
    // The inner source's count already includes what was read ahead (Redis: XPENDING).
    std::lock_guard lock(shared_->mutex);
    return shared_->pending;
  }
  std::size_t dead_letters() override {
    std::lock_guard lock(shared_->mutex);
    return shared_->dead_letters;
  }
  int64_t oldest_age_ms() override {
    std::lock_guard lock(shared_->mutex);
    return shared_->oldest_age_ms;
  }
  std::vector<DeadLetter> list_dead(std::size_t max) override {
    return ask<std::vector<DeadLetter>>([max](MessageSource& s) { return s.list_dead(max); });
  }
  std::size_t requeue_dead(const std::vector<std::string>& ids) override {
    return ask<std::size_t>([ids](MessageSource& s) { return s.requeue_dead(ids); });
  }
  std::size_t purge_dead(const std::vector<std::string>& ids) override {
    return ask<std::size_t>([ids](MessageSource& s) { return s.purge_dead(ids); });
  }
  void name_instance(const std::string& instance) override {
    shared_->inner->name_instance(instance);
  }
  // Both before the thread starts, or pure (a name made from the URL).
  void require_stable_ids() override { shared_->inner->require_stable_ids(); }
  std::string identity() override {
    std::lock_guard lock(shared_->mutex);  // the thread lets go of the inner source as it ends
    return shared_->inner != nullptr ? shared_->inner->identity() : std::string();
  }
  void keep_alive() override {
    post([](MessageSource& s) { s.keep_alive(); });
  }

 private:
  void start() {
    if (thread_.joinable()) return;
    thread_ = std::thread([shared = shared_] { run(shared); });
  }

  void post(std::function<void(MessageSource&)> command) {
    start();
    {
      std::lock_guard lock(shared_->mutex);
      MessageSource* inner = shared_->inner.get();
      shared_->commands.push_back([inner, command = std::move(command)] { command(*inner); });
      ++shared_->posted;
    }
    shared_->work.notify_one();
  }

  template <typename T>
  T ask(std::function<T(MessageSource&)> fn) {
    auto post_it = [this](std::function<void(MessageSource&)> job) { post(std::move(job)); };
    std::optional<T> answer = ask_thread<T>(post_it, std::move(fn), kWait);
    if (!answer)
      throw std::runtime_error(
          fmt::format("mq: the queue did not answer within {} s", kWait.count()));
    return std::move(*answer);
  }

  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<MessageSource> run_off_loop(std::unique_ptr<MessageSource> inner) {
  return std::make_unique<OffLoopSource>(std::move(inner));
}

}  // namespace clutch::mq
