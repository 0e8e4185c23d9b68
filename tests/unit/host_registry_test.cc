// The coordinator's soft state of hosts (liveness, load, memory use), kept
// in memory, and the rule that a heartbeat writes to the store only what
// changed of its durable part. Times are plain numbers: no clock is read.
#include "coordinator/host_registry.h"

#include <gtest/gtest.h>

namespace ferry::coord {
namespace {

// The coordinator's window: 5 missed heartbeats of 200 ms.
constexpr int64_t kWindowMs = 1000;

TEST(HostRegistry, AHostTheStoreKnowsGetsAWholeWindowFromTheStartToReport) {
  HostRegistry r;
  r.add("hostA", 10'000);  // the coordinator (re)started at 10 s
  EXPECT_TRUE(r.has("hostA"));
  EXPECT_TRUE(r.up("hostA"));
  EXPECT_EQ(r.lastHeard("hostA"), 10'000);
  // Silent for exactly the window: still up; a millisecond more: down.
  EXPECT_TRUE(r.markSilentDown(11'000 - kWindowMs).empty());
  EXPECT_TRUE(r.up("hostA"));
  EXPECT_EQ(r.markSilentDown(11'001 - kWindowMs), std::vector<std::string>{"hostA"});
  EXPECT_FALSE(r.up("hostA"));
}

TEST(HostRegistry, ASilentHostIsMarkedDownOnceAndUpAgainWhenHeard) {
  HostRegistry r;
  r.add("hostA", 0);
  r.add("hostB", 0);
  EXPECT_FALSE(r.heard("hostB", 900)) << "hostB was never down";
  EXPECT_EQ(r.markSilentDown(500), std::vector<std::string>{"hostA"});
  EXPECT_TRUE(r.markSilentDown(500).empty()) << "reported down twice";
  EXPECT_FALSE(r.up("hostA"));
  EXPECT_TRUE(r.up("hostB"));
  EXPECT_TRUE(r.heard("hostA", 2000)) << "not reported as back up";
  EXPECT_TRUE(r.up("hostA"));
  EXPECT_EQ(r.lastHeard("hostA"), 2000);
  EXPECT_FALSE(r.heard("hostA", 2200));
  // hostB last heard at 900: down now, hostA (2200) not.
  EXPECT_EQ(r.markSilentDown(1500), std::vector<std::string>{"hostB"});
}

TEST(HostRegistry, AnUnknownHostIsNeitherUpNorHeard) {
  HostRegistry r;
  EXPECT_FALSE(r.has("ghost"));
  EXPECT_FALSE(r.up("ghost"));
  EXPECT_EQ(r.lastHeard("ghost"), 0);
  EXPECT_EQ(r.load("ghost").memory_total_bytes, 0u);
  // A registration (a hello) is heard at once and is up.
  EXPECT_FALSE(r.heard("hostC", 50));
  EXPECT_TRUE(r.has("hostC"));
  EXPECT_TRUE(r.up("hostC"));
}

TEST(HostRegistry, AddingAHostAlreadyHeardKeepsWhatWasHeard) {
  HostRegistry r;
  r.heard("hostA", 7000);
  r.add("hostA", 100);
  EXPECT_EQ(r.lastHeard("hostA"), 7000);
}

TEST(HostRegistry, LoadIsTheLastReportedAndZerosBeforeAny) {
  HostRegistry r;
  r.add("hostA", 0);
  LoadRow none = r.load("hostA");
  EXPECT_DOUBLE_EQ(none.cpu_percent, 0);
  EXPECT_EQ(none.memory_capacity_bytes, 0u);
  r.setLoad("hostA", {37.5, 1000, 4000, 3000});
  r.setLoad("hostA", {12.5, 1500, 4000, 3000});
  LoadRow l = r.load("hostA");
  EXPECT_DOUBLE_EQ(l.cpu_percent, 12.5);
  EXPECT_EQ(l.memory_used_bytes, 1500u);
  EXPECT_EQ(l.memory_total_bytes, 4000u);
  EXPECT_EQ(l.memory_capacity_bytes, 3000u);
  EXPECT_EQ(r.load("hostB").memory_used_bytes, 0u) << "one host's load leaked to another";
}

TEST(HostRegistry, AContainersMemoryIsItsHostsLastReportOrTheStoresWhenNone) {
  HostRegistry r;
  r.setMemory("hostA", {{"web", 300}});
  EXPECT_EQ(r.withMemory({"web", "hostA", "counter", "running", 1}).memory_bytes, 300u);
  // The same name on another host (mid-migration) is that host's own.
  EXPECT_EQ(r.withMemory({"web", "hostB", "counter", "running", 1}).memory_bytes, 1u);
  // A container the last report did not have keeps the store's figure.
  EXPECT_EQ(r.withMemory({"db", "hostA", "pg", "running", 42}).memory_bytes, 42u);
  // A later report replaces the whole list.
  r.setMemory("hostA", {{"db", 50}});
  EXPECT_EQ(r.withMemory({"web", "hostA", "counter", "running", 1}).memory_bytes, 1u);
  EXPECT_EQ(r.withMemory({"db", "hostA", "pg", "running", 42}).memory_bytes, 50u);
}

// --- a heartbeat writes only what changed ---------------------------------------

ContainerRow row(const std::string& name, const std::string& status, uint64_t memory) {
  return {name, "hostA", "counter", status, memory};
}

TEST(HeartbeatWrites, NothingWhenOnlyMemoryUseOrTheOrderDiffers) {
  std::vector<ContainerRow> stored = {row("web", "running", 100), row("db", "running", 200)};
  EXPECT_FALSE(placementChanged(stored, stored));
  EXPECT_FALSE(placementChanged(stored, {row("db", "running", 999), row("web", "running", 1)}));
  EXPECT_FALSE(placementChanged({}, {}));
  EXPECT_FALSE(
      imagesChanged({{"counter", "aa"}, {"web", "bb"}}, {{"web", "bb"}, {"counter", "aa"}}));
}

TEST(HeartbeatWrites, AContainerAddedRemovedRenamedOrChangedIsWritten) {
  std::vector<ContainerRow> stored = {row("web", "running", 100)};
  EXPECT_TRUE(placementChanged(stored, {}));
  EXPECT_TRUE(placementChanged({}, stored));
  EXPECT_TRUE(placementChanged(stored, {row("web", "running", 100), row("db", "running", 1)}));
  EXPECT_TRUE(placementChanged(stored, {row("www", "running", 100)}));
  EXPECT_TRUE(placementChanged(stored, {row("web", "paused", 100)}));
  ContainerRow other_image = row("web", "running", 100);
  other_image.image = "counter2";
  EXPECT_TRUE(placementChanged(stored, {other_image}));
}

TEST(HeartbeatWrites, AnImageAddedRemovedOrRetaggedIsWritten) {
  std::vector<ImageRow> stored = {{"counter", "aa"}};
  EXPECT_TRUE(imagesChanged(stored, {}));
  EXPECT_TRUE(imagesChanged(stored, {{"counter", "aa"}, {"web", "bb"}}));
  EXPECT_TRUE(imagesChanged(stored, {{"counter", "cc"}})) << "same name, another image";
  EXPECT_TRUE(imagesChanged(stored, {{"counter2", "aa"}})) << "same image, another name";
}

}  // namespace
}  // namespace ferry::coord
