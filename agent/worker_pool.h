// A fixed set of threads for the agent's commands, in place of a thread per
// command: at most `threads` commands run at once. There is no queue to
// wait in -- a job is taken only when a worker is free to start it now --
// because commands wait on each other (a commit waits for the transfer of
// its container to end), and a transfer queued behind its own waiters would
// only end in their timeouts.
//
// Thread-safety: trySubmit and waitUntilIdle from any thread.
// Blocking: waitUntilIdle and the destructor wait for every running job.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ferry::agent {

class WorkerPool {
 public:
  explicit WorkerPool(size_t threads);
  // Runs what was taken, then joins every thread.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Starts `job` on a free worker; false (and `job` dropped unrun) when
  // every worker is busy. A job's exception is logged, never propagated.
  bool trySubmit(std::function<void()> job);
  // Returns once no job is waiting or running.
  void waitUntilIdle();

 private:
  void work();

  std::mutex mu_;
  std::condition_variable wake_;  // a job or stop for the workers
  std::condition_variable idle_;  // a job ended
  // Below: only under mu_.
  std::deque<std::function<void()>> jobs_;
  size_t free_;  // workers not running a job
  size_t running_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;  // last: started once the state above exists
};

}  // namespace ferry::agent
