// A migration's transfer with real bytes across a ZeroMQ socket: hostA's
// engine streams a frozen container's checkpoint to hostB's, which restores
// it as it arrives. Each host on its own loopback address.
#include <future>

#include <gtest/gtest.h>

#include "agent/transfer.h"
#include "common/error.h"
#include "common/fs.h"
#include "test_host.h"

namespace ferry::testing {
namespace {

using std::chrono::seconds;
using TransferIntegration = TwoHostTest;

TEST_F(TransferIntegration, TheContainerGoesOnOnTheTargetAndTheSourceWaitsFrozenForTheCommit) {
  runCounterOnA("mig", 5);
  zmq::context_t ctx;
  proto::ChunkReceiver rx(ctx, "tcp://127.0.0.3:0", "token-1", "hostB");
  auto restored = std::async(std::launch::async, [&] { return agent::receiveCheckpoint(b(), rx); });

  agent::SendResult sent = agent::sendCheckpoint(a(), "mig", ctx, rx.endpoint(), "token-1");
  RestoreResult r = restored.get();
  EXPECT_EQ(r.container.status, ContainerStatus::kRunning);
  EXPECT_GT(sent.checkpoint.bundle_bytes, sent.checkpoint.memory_bytes);
  // The source is frozen, not gone, until the commit.
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kPaused);
  unsigned long last = counterValues(a(), "mig").back();
  waitFor([&] { return valuesAfter(counterValues(b(), "mig"), last).size() >= 3; }, seconds(20),
          "mig to count on hostB");
  EXPECT_EQ(valuesAfter(counterValues(b(), "mig"), last).front(), last + 1) << "the counter did not go on";
  EXPECT_EQ(readFile(b().volumes().path("data") / "marker"), "volume content from before the run\n");

  a().remove("mig", true);  // commit
  EXPECT_TRUE(a().list().empty());
  EXPECT_FALSE(runcHasContainers(a().config()));
}

// Fault: the target refuses (a container of that name already runs there).
// Promise: the sender sees the target's reason, and the source container is
// resumed with its counter unbroken; nothing new on the target.
TEST_F(TransferIntegration, ARefusingTargetLeavesTheSourceRunningUnbroken) {
  runCounterOnA("mig", 3);
  b().volumes().ensure("other");
  b().run(counterSpec("mig", "other"));
  zmq::context_t ctx;
  proto::ChunkReceiver rx(ctx, "tcp://127.0.0.3:0", "token-2", "hostB");
  auto restored = std::async(std::launch::async, [&] {
    try {
      agent::receiveCheckpoint(b(), rx);
    } catch (const Error&) {
      return true;
    }
    return false;
  });
  try {
    agent::sendCheckpoint(a(), "mig", ctx, rx.endpoint(), "token-2");
    FAIL() << "the transfer succeeded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("already exists"), std::string::npos) << msg;
    EXPECT_NE(msg.find("hostB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("it runs on here again"), std::string::npos) << msg;
  }
  EXPECT_TRUE(restored.get()) << "the target did not fail";
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kRunning);
  unsigned long before = counterValues(a(), "mig").back();
  waitFor([&] { return counterValues(a(), "mig").back() > before + 2; }, seconds(10),
          "the source to count on after the refusal");
  std::vector<unsigned long> v = counterValues(a(), "mig");
  for (size_t i = 1; i < v.size(); ++i) ASSERT_EQ(v[i], v[i - 1] + 1) << "counter broke at " << i;
  ASSERT_EQ(b().list().size(), 1u);  // only its own
}

// Fault: the target goes away mid-stream (its receiver is destroyed after
// the first bytes). Promise: the sender times out, the source runs on.
TEST_F(TransferIntegration, ATargetThatVanishesMidStreamLeavesTheSourceRunning) {
  runCounterOnA("mig", 3);
  zmq::context_t ctx;
  agent::TransferOptions opts;
  opts.stream.timeout = std::chrono::milliseconds(1500);
  opts.stream.window = 1;
  opts.stream.chunk_bytes = 4096;  // the sender is mid-stream when the target goes
  std::string endpoint;
  std::promise<std::string> bound;
  auto target = std::async(std::launch::async, [&] {
    proto::ChunkReceiver rx(ctx, "tcp://127.0.0.3:0", "token-3", "hostB", opts.stream);
    bound.set_value(rx.endpoint());
    char buf[1024];
    rx.read(buf, sizeof buf);  // takes a little, then vanishes
  });
  endpoint = bound.get_future().get();
  // The promise: the sender gives up when the stream's timeout passes with
  // no credit (a retryable timeout naming it), not on some other error.
  try {
    agent::sendCheckpoint(a(), "mig", ctx, endpoint, "token-3", opts);
    ADD_FAILURE() << "sending to a vanished target succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kRetryable) << e.what();
    EXPECT_NE(std::string(e.what()).find("granted no credit within 1500 ms"), std::string::npos)
        << e.what();
  }
  target.get();
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kRunning);
  unsigned long before = counterValues(a(), "mig").back();
  waitFor([&] { return counterValues(a(), "mig").back() > before + 2; }, seconds(10),
          "the source to count on");
  EXPECT_TRUE(b().list().empty());
}

// Fault: the target takes every byte and then goes silent, so whether it
// restored the container is unknown. Promise: the source stays frozen (two
// copies must never run) and says so; the coordinator resolves it.
TEST_F(TransferIntegration, ATargetSilentAfterTheLastByteLeavesTheSourceFrozen) {
  runCounterOnA("mig", 3);
  zmq::context_t ctx;
  agent::TransferOptions opts;
  opts.stream.timeout = std::chrono::milliseconds(1500);
  std::promise<std::string> bound;
  auto target = std::async(std::launch::async, [&] {
    proto::ChunkReceiver rx(ctx, "tcp://127.0.0.3:0", "token-4", "hostB", opts.stream);
    bound.set_value(rx.endpoint());
    std::vector<char> buf(1 << 20);
    while (rx.read(buf.data(), buf.size()) > 0) {
    }
    // Every byte checked out; no verdict is ever sent.
  });
  std::string endpoint = bound.get_future().get();
  try {
    agent::sendCheckpoint(a(), "mig", ctx, endpoint, "token-4", opts);
    FAIL() << "the transfer succeeded without a verdict";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stays frozen here"), std::string::npos) << e.what();
  }
  target.get();
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kPaused);
  a().resume("mig");  // what the coordinator's rollback does once the target is known empty
  unsigned long before = counterValues(a(), "mig").back();
  waitFor([&] { return counterValues(a(), "mig").back() > before + 2; }, seconds(10), "the source to count on");
}

}  // namespace
}  // namespace ferry::testing
