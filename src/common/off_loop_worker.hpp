// A thread for a blocking library's calls (hiredis, SQLite, rabbitmq-c) on behalf of an event
// loop: each job runs on the thread, in order, and its completion is posted back to the loop.
// After the owner destroys the worker no completion is posted (the loop may be gone); a job
// still running then finishes on its own, holding whatever it captured.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace clutch {

class OffLoopWorker {
 public:
  using Completion = std::function<void()>;
  // `post_to_loop` must be callable from any thread (Context::post is).
  explicit OffLoopWorker(std::function<void(Completion)> post_to_loop);
  // Drops the queued jobs, waits at most `kStopWait` for the running one, and posts nothing more.
  ~OffLoopWorker();
  OffLoopWorker(const OffLoopWorker&) = delete;
  OffLoopWorker& operator=(const OffLoopWorker&) = delete;

  // Queues `job`; what it returns (if not empty) runs on the loop afterwards.
  void run(std::function<Completion()> job);
  // Jobs queued or running.
  std::size_t busy() const;

 private:
  struct Shared {
    std::function<void(Completion)> post_to_loop;
    mutable std::mutex mutex;
    std::condition_variable work, ended;
    std::deque<std::function<Completion()>> jobs;
    std::size_t running = 0;
    bool stopping = false, finished = false;
  };
  static void loop(const std::shared_ptr<Shared>& shared);
  std::shared_ptr<Shared> shared_;
};

}  // namespace clutch
