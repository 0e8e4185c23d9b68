// The agent's bounded worker pool: jobs run, a full pool refuses at once,
// a failing job does not cost a worker, nothing taken is lost at shutdown.
#include "agent/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <stdexcept>

namespace ferry::agent {
namespace {

TEST(WorkerPool, RunsASubmittedJob) {
  WorkerPool pool(2);
  std::promise<int> ran;
  ASSERT_TRUE(pool.trySubmit([&] { ran.set_value(42); }));
  EXPECT_EQ(ran.get_future().get(), 42);
}

TEST(WorkerPool, RefusesWhileEveryWorkerIsBusyAndTakesAgainOnceOneIsFree) {
  WorkerPool pool(2);
  std::latch started(2);
  std::promise<void> release;
  std::shared_future<void> go = release.get_future().share();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(pool.trySubmit([&started, go] {
      started.count_down();
      go.wait();
    }));
  }
  started.wait();
  bool ran = false;
  EXPECT_FALSE(pool.trySubmit([&] { ran = true; })) << "both workers are busy";
  release.set_value();
  pool.waitUntilIdle();
  EXPECT_FALSE(ran) << "a refused job is dropped, not run later";
  std::promise<void> third;
  EXPECT_TRUE(pool.trySubmit([&] { third.set_value(); }));
  third.get_future().wait();
}

TEST(WorkerPool, AFailingJobDoesNotCostAWorker) {
  WorkerPool pool(1);
  ASSERT_TRUE(pool.trySubmit([] { throw std::runtime_error("boom"); }));
  pool.waitUntilIdle();
  std::promise<void> next;
  ASSERT_TRUE(pool.trySubmit([&] { next.set_value(); }));
  next.get_future().wait();
}

TEST(WorkerPool, ShutdownRunsEverythingTakenAndReleasesWhatJobsHold) {
  std::atomic<int> ran{0};
  auto held = std::make_shared<int>(0);
  {
    WorkerPool pool(4);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(pool.trySubmit([&ran, held] { ++ran; }));
  }
  EXPECT_EQ(ran, 4);
  EXPECT_EQ(held.use_count(), 1) << "each job was destroyed once it had run";
}

}  // namespace
}  // namespace ferry::agent
