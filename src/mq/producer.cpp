// clutch::Producer: a MessageSource used for publishing only, on a thread of its own; results go
// back to the caller's loop through Context::post.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "clutch/mq.hpp"

namespace clutch {

struct Producer::State {
  struct Job {
    std::vector<std::string> bodies;
    Done done;
  };
  Context* ctx = nullptr;
  std::unique_ptr<MessageSource> source;
  std::mutex mutex;
  std::condition_variable work, ended;
  std::deque<Job> jobs;
  bool stopping = false, finished = false;
  std::atomic<bool> alive{true};  // false once the Producer is gone: results are dropped
  std::atomic<std::size_t> in_flight{0};
};

void Producer::run(const std::shared_ptr<State>& state) {
  auto& s = *state;
  std::unique_lock lock(s.mutex);
  while (true) {
    s.work.wait(lock, [&] { return s.stopping || !s.jobs.empty(); });
    if (s.stopping) break;
    Producer::State::Job job = std::move(s.jobs.front());
    s.jobs.pop_front();
    lock.unlock();
    std::string error;
    try {
      s.source->publish_many(job.bodies);
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "publishing failed";
    }
    lock.lock();
    // Under the lock: once the destructor cleared `alive`, nothing is posted to a loop (or a
    // Context) that may be gone.
    if (s.alive) {
      s.ctx->post([state, done = std::move(job.done), error = std::move(error)] {
        --state->in_flight;
        if (state->alive && done) done(error);
      });
    }
  }
  s.finished = true;
  s.ended.notify_all();
}

Producer::Producer(Context& ctx, const std::string& url) : state_(std::make_shared<State>()) {
  state_->ctx = &ctx;
  state_->source = open_message_source(url);
  std::thread([state = state_] { run(state); }).detach();
}

Producer::~Producer() {
  std::unique_lock lock(state_->mutex);
  state_->alive = false;
  state_->stopping = true;
  state_->work.notify_all();
  // A publish under way finishes (or times out) on its own; the thread holds the state.
  state_->ended.wait_for(lock, std::chrono::seconds(1), [&] { return state_->finished; });
}

void Producer::publish(std::string body, Done done) {
  std::vector<std::string> one;
  one.push_back(std::move(body));
  publish_many(std::move(one), std::move(done));
}

void Producer::publish_many(std::vector<std::string> bodies, Done done) {
  ++state_->in_flight;
  {
    std::lock_guard lock(state_->mutex);
    state_->jobs.push_back({std::move(bodies), std::move(done)});
  }
  state_->work.notify_one();
}

std::size_t Producer::in_flight() const {
  return state_->in_flight;
}

}  // namespace clutch
