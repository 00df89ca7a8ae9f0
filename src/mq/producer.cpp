// clutch::Producer: a MessageSource used for publishing only, its calls on an OffLoopWorker;
// results go back to the caller's loop through Context::post.
#include <atomic>

#include "clutch/mq.hpp"
#include "common/off_loop_worker.hpp"

namespace clutch {

struct Producer::State {
  std::shared_ptr<MessageSource> source;
  std::unique_ptr<OffLoopWorker> worker;
  std::atomic<std::size_t> in_flight{0};
  bool alive = true;  // loop thread only: false once the Producer is gone
};

Producer::Producer(Context& ctx, const std::string& url) : state_(std::make_shared<State>()) {
  state_->source = open_message_source(url);
  state_->worker = std::make_unique<OffLoopWorker>(
      [&ctx](OffLoopWorker::Completion fn) { ctx.post(std::move(fn)); });
}

Producer::~Producer() {
  state_->alive = false;   // a completion already posted finds it so
  state_->worker.reset();  // and none is posted after this
}

void Producer::publish(std::string body, Done done) {
  std::vector<std::string> one;
  one.push_back(std::move(body));
  publish_many(std::move(one), std::move(done));
}

void Producer::publish_many(std::vector<std::string> bodies, Done done) {
  ++state_->in_flight;
  state_->worker->run([state = state_, source = state_->source, bodies = std::move(bodies),
                       done = std::move(done)]() mutable -> OffLoopWorker::Completion {
    std::string error;
    try {
      source->publish_many(bodies);
    } catch (const std::exception& e) {
      error = *e.what() != '\0' ? e.what() : "publishing failed";
    }
    return [state, done = std::move(done), error = std::move(error)] {
      --state->in_flight;
      if (state->alive && done) done(error);
    };
  });
}

std::size_t Producer::in_flight() const {
  return state_->in_flight;
}

}  // namespace clutch
