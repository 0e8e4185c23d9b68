#include "agent/worker_pool.h"

#include <exception>

#include "agent/agent_log.h"
#include "common/log.h"

namespace ferry::agent {

// Every worker counts as free from the start, not from when its thread
// first waits: a job submitted at once must not be refused.
WorkerPool::WorkerPool(size_t threads) : free_(threads) {
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

bool WorkerPool::trySubmit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> g(mu_);
    // A job taken but not yet picked up holds a free worker already.
    if (stop_ || free_ <= jobs_.size()) return false;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void WorkerPool::waitUntilIdle() {
  std::unique_lock<std::mutex> l(mu_);
  idle_.wait(l, [&] { return jobs_.empty() && running_ == 0; });
}

void WorkerPool::work() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    wake_.wait(l, [&] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and nothing was taken
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    --free_;
    ++running_;
    l.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      agentLog().warn("agent worker failed: {}", e.what());
    }
    job = nullptr;  // what it holds (a busy mark) ends before it counts as done
    l.lock();
    --running_;
    ++free_;
    idle_.notify_all();
  }
}

}  // namespace ferry::agent
