#include "common/off_loop_worker.hpp"

#include <chrono>
#include <thread>

namespace clutch {

OffLoopWorker::OffLoopWorker(std::function<void(Completion)> post_to_loop)
    : shared_(std::make_shared<Shared>()) {
  shared_->post_to_loop = std::move(post_to_loop);
  std::thread([shared = shared_] { loop(shared); }).detach();
}

OffLoopWorker::~OffLoopWorker() {
  std::unique_lock lock(shared_->mutex);
  shared_->stopping = true;
  shared_->jobs.clear();
  shared_->work.notify_all();
  shared_->ended.wait_for(lock, std::chrono::seconds(1), [&] { return shared_->finished; });
}

void OffLoopWorker::run(std::function<Completion()> job) {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->jobs.push_back(std::move(job));
  }
  shared_->work.notify_one();
}

std::size_t OffLoopWorker::busy() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->jobs.size() + shared_->running;
}

void OffLoopWorker::loop(const std::shared_ptr<Shared>& shared) {
  Shared& s = *shared;
  std::unique_lock lock(s.mutex);
  while (true) {
    s.work.wait(lock, [&] { return s.stopping || !s.jobs.empty(); });
    if (s.stopping) break;
    auto job = std::move(s.jobs.front());
    s.jobs.pop_front();
    ++s.running;
    lock.unlock();
    Completion then = job();
    lock.lock();
    --s.running;
    // Under the lock: once the destructor set `stopping`, nothing is posted.
    if (!s.stopping && then) s.post_to_loop(std::move(then));
  }
  s.finished = true;
  s.ended.notify_all();
}

}  // namespace clutch
