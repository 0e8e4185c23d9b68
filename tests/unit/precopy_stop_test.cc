// Pre-copy's stop rules (agent/transfer.h), run by the real sendCheckpoint
// over a real chunk stream, with rounds of sizes the test chooses: where each
// threshold lies and which rule ends the rounds, on any machine.
//
// Why a scripted engine: how much a round sends is how fast the container
// dirties memory against how fast this machine copies it. A real workload
// gives the sizes the machine allows, never the ones on either side of a
// threshold; the integration tests run real rounds and check the decision
// taken on what they measured.
#include <gtest/gtest.h>

#include <deque>
#include <future>

#include "agent/transfer.h"
#include "protocol/chunk_stream.h"

namespace ferry::agent {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

struct Round {
  double read_mib;  // what the round read (memory and files)
  double sent_mib;  // what of it was new to the target
};

// An engine whose pre-copy rounds report the scripted sizes; everything a
// transfer does not call fails the test.
class ScriptedEngine final : public AgentEngine {
 public:
  ScriptedEngine(std::vector<Round> rounds, uint64_t memory = 64 * kMiB, uint64_t files = 0)
      : rounds_(rounds.begin(), rounds.end()), memory_(memory), files_(files) {
    cfg_.host_name = "hostA";
  }
  int precopyCalls() const { return precopy_calls_; }

  PrecopyRound precopy(const std::string&, BundleWriter&) override {
    ++precopy_calls_;
    if (rounds_.empty()) throw Error(ErrorCategory::kPermanent, "more rounds than scripted");
    Round r = rounds_.front();
    rounds_.pop_front();
    return {.memory_bytes = static_cast<uint64_t>(r.read_mib * kMiB),
            .sent_bytes = static_cast<uint64_t>(r.sent_mib * kMiB)};
  }
  CheckpointResult exportCheckpoint(const std::string&, BundleWriter&,
                                    const CheckpointOptions&) override {
    return {};
  }
  uint64_t memoryBytes(const std::string&) const override { return memory_; }
  // As the engine does: counted no further than `enough`.
  uint64_t filesBytes(const std::string&, uint64_t enough) override {
    return std::min(files_, enough);
  }
  const EngineConfig& config() const override { return cfg_; }

  const HostInfo& hostInfo() override { unused("hostInfo"); }
  ContainerInfo run(const ContainerSpec&) override { unused("run"); }
  ContainerInfo stop(const std::string&, std::chrono::milliseconds, std::optional<int>) override {
    unused("stop");
  }
  void resume(const std::string&) override { unused("resume"); }
  void remove(const std::string&, bool) override { unused("remove"); }
  ContainerInfo inspect(const std::string&) override { unused("inspect"); }
  std::vector<ContainerInfo> list() override { unused("list"); }
  LogChunk logsFrom(const std::string&, LogPosition) override { unused("logsFrom"); }
  uint64_t cpuUsec(const std::string&) const override { unused("cpuUsec"); }
  std::vector<ImageRecord> listImages() override { unused("listImages"); }
  ImageRecord resolveImage(const std::string&) override { unused("resolveImage"); }
  std::optional<std::filesystem::path> imageSourceFile(const std::string&) override {
    unused("imageSourceFile");
  }
  ImageRecord importImage(const std::string&, const std::filesystem::path&) override {
    unused("importImage");
  }
  void removeVolume(const std::string&) override { unused("removeVolume"); }
  std::vector<SecretInfo> listSecrets() override { unused("listSecrets"); }
  void putSecret(const std::string&, const std::string&, bool) override { unused("putSecret"); }
  void removeSecret(const std::string&) override { unused("removeSecret"); }
  std::map<std::string, std::vector<std::string>> secretUsers() const override {
    unused("secretUsers");
  }
  RestoreResult importCheckpoint(ByteSource&, const RestoreOptions&, const BundleLimits&) override {
    unused("importCheckpoint");
  }

 private:
  [[noreturn]] static void unused(const char* what) {
    ADD_FAILURE() << "a transfer called " << what;
    throw Error(ErrorCategory::kPermanent, std::string("ScriptedEngine: no ") + what);
  }

  EngineConfig cfg_;
  std::deque<Round> rounds_;
  uint64_t memory_;
  uint64_t files_;
  int precopy_calls_ = 0;
};

class PrecopyStop : public ::testing::Test {
 protected:
  // Sends "web" with `precopy` (rounds, 0 or kPrecopyAuto) to a receiver on
  // loopback that takes every byte and accepts.
  SendResult send(ScriptedEngine& engine, int precopy) {
    proto::StreamOptions so{
        .chunk_bytes = 64 << 10, .window = 4, .timeout = std::chrono::seconds(10)};
    proto::ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok", "hostB", so);
    auto received = std::async(std::launch::async, [&] {
      char buf[65536];
      while (rx.read(buf, sizeof buf) > 0) {
      }
      rx.accept();
    });
    TransferOptions opts;
    opts.stream = so;
    opts.precopy = precopy;
    SendResult r = sendCheckpoint(engine, "web", ctx_, rx.endpoint(), "tok", opts);
    received.get();
    return r;
  }

  // The rounds run, the reason given (`why`: part of it), and the sizes of
  // each round as reported.
  void expectStop(const std::vector<Round>& script, int precopy, size_t rounds,
                  const std::string& why) {
    ScriptedEngine engine(script);
    SendResult r = send(engine, precopy);
    EXPECT_EQ(r.rounds.size(), rounds) << r.precopy;
    EXPECT_EQ(engine.precopyCalls(), static_cast<int>(rounds));
    std::string said =
        std::to_string(rounds) + (rounds == 1 ? " round" : " rounds") + "; stopped: ";
    EXPECT_EQ(r.precopy.rfind(said, 0), 0u) << r.precopy;
    EXPECT_NE(r.precopy.find(why, said.size()), std::string::npos) << r.precopy;
    for (size_t i = 0; i < r.rounds.size(); ++i) {
      EXPECT_EQ(r.rounds[i].round, static_cast<int>(i) + 1);
      EXPECT_EQ(r.rounds[i].sent_bytes, static_cast<uint64_t>(script[i].sent_mib * kMiB));
      EXPECT_EQ(r.rounds[i].read_bytes, static_cast<uint64_t>(script[i].read_mib * kMiB));
    }
  }

  zmq::context_t ctx_;
};

TEST_F(PrecopyStop, TheGoalIsAtLeast8MiB) {
  // 2 % of 100 MiB is 2 MiB: the goal is the floor, 8 MiB, inclusive.
  expectStop({{100, 100}, {100, 8}}, 10, 2,
             "the last round sent 8.0 MiB, within the goal of 8.0 MiB");
  expectStop({{100, 100}, {100, 8.1}, {100, 1}}, 10, 3, "the last round sent 1.0 MiB");
}

TEST_F(PrecopyStop, TheGoalIs2PercentOfWhatTheRoundReadWhenThatIsMore) {
  // 2 % of 1000 MiB: 20 MiB, inclusive.
  expectStop({{1000, 1000}, {1000, 20}}, 10, 2, "within the goal of 20.0 MiB");
  expectStop({{1000, 1000}, {1000, 20.1}, {1000, 19}}, 10, 3, "within the goal of 20.0 MiB");
  // A first round within the goal is the only one.
  expectStop({{1000, 5}}, 10, 1, "the last round sent 5.0 MiB, within the goal of 20.0 MiB");
}

TEST_F(PrecopyStop, ARoundSendingMoreThan80PercentOfTheOneBeforeEndsTheRounds) {
  // Exactly 80 % still shrinks enough: the rounds go on.
  expectStop({{100, 100}, {100, 80}, {100, 64}, {100, 52}}, 10, 4,
             "the delta stopped shrinking (64.0 MiB then 52.0 MiB)");
  expectStop({{100, 100}, {100, 81}}, 10, 2,
             "the delta stopped shrinking (100.0 MiB then 81.0 MiB): memory is dirtied about as "
             "fast as it is copied");
  // Growing (a container dirtying faster than the copy) ends them too.
  expectStop({{100, 50}, {100, 90}}, 10, 2, "the delta stopped shrinking");
}

TEST_F(PrecopyStop, TheRoundCapEndsRoundsThatKeepShrinking) {
  expectStop({{100, 100}, {100, 50}, {100, 25}, {100, 12}}, 3, 3, "the round cap of 3 was reached");
}

TEST_F(PrecopyStop, NoMoreThan20RoundsWhateverIsAsked) {
  std::vector<Round> script;
  double sent = 1'000'000;
  for (int i = 0; i < 25; ++i, sent *= 0.75) script.push_back({sent, sent});
  expectStop(script, 50, static_cast<size_t>(kPrecopyMaxRounds), "the round cap of 20 was reached");
}

TEST_F(PrecopyStop, OffRunsNoRound) {
  ScriptedEngine engine({{100, 100}});
  SendResult r = send(engine, 0);
  EXPECT_TRUE(r.rounds.empty());
  EXPECT_EQ(engine.precopyCalls(), 0);
  EXPECT_EQ(r.precopy, "off");
}

TEST_F(PrecopyStop, AutoRunsNoRoundForASmallContainerNorOverLoopback) {
  ScriptedEngine small({{100, 100}}, 16 * kMiB, 16 * kMiB - 1);
  SendResult r = send(small, kPrecopyAuto);
  EXPECT_EQ(small.precopyCalls(), 0);
  EXPECT_NE(r.precopy.find("off (auto: 16.0 MiB of memory and 16.0 MiB of rootfs diff and "
                           "volumes migrate as fast without pre-copy)"),
            std::string::npos)
      << r.precopy;
  ScriptedEngine big({{100, 100}}, 32 * kMiB);  // this test's target is on 127.0.0.1
  r = send(big, kPrecopyAuto);
  EXPECT_EQ(big.precopyCalls(), 0);
  EXPECT_NE(r.precopy.find("loopback"), std::string::npos) << r.precopy;
}

// What crosses while frozen is weighed whole: a container of little memory
// whose rootfs diff and volumes are large is pre-copied, over loopback too
// (there the rounds take the files' transfer out of the freeze).
TEST_F(PrecopyStop, AutoWeighsTheRootfsDiffAndVolumesToo) {
  ScriptedEngine files({{300, 300}, {300, 0}}, 7 * kMiB, 300 * kMiB);
  SendResult r = send(files, kPrecopyAuto);  // this test's target is on 127.0.0.1
  EXPECT_EQ(files.precopyCalls(), 2);
  EXPECT_NE(r.precopy.find("2 rounds"), std::string::npos) << r.precopy;
  // Together past the threshold, but too little in files for loopback.
  ScriptedEngine mixed({{100, 100}}, 24 * kMiB, 24 * kMiB);
  r = send(mixed, kPrecopyAuto);
  EXPECT_EQ(mixed.precopyCalls(), 0);
  EXPECT_NE(r.precopy.find("loopback"), std::string::npos) << r.precopy;
}

}  // namespace
}  // namespace ferry::agent
