// The drain and rebalance planners on hand-made clusters: where each
// container goes and why, what is refused, and what stays put.
#include "coordinator/planner.h"

#include <gtest/gtest.h>

#include <limits>

#include "common/error.h"

namespace ferry::coord {
namespace {

constexpr uint64_t kMiB = 1 << 20;

PlanHost host(const std::string& name, uint64_t capacity_mib, uint64_t used_mib, int cls = 0) {
  PlanHost h;
  h.name = name;
  h.memory_capacity = capacity_mib * kMiB;
  h.memory_used = used_mib * kMiB;
  h.compat_class = cls;
  return h;
}

PlanContainer ctr(const std::string& name, const std::string& host, uint64_t mib,
                  const std::string& image = "img") {
  return {name, host, image, mib * kMiB, 0};
}

bool sameClass(int a, int b) { return a == b; }
bool any(int, int) { return true; }

TEST(PlanDrain, SpreadsLargestFirstOverHostsWithRoom) {
  std::vector<PlanHost> hosts = {host("a", 1000, 600), host("b", 1000, 100), host("c", 1000, 300)};
  std::vector<PlanContainer> cs = {ctr("x", "a", 100), ctr("y", "a", 300), ctr("z", "a", 200),
                                   ctr("other", "b", 100)};
  Plan p = planDrain("a", hosts, cs, any);
  ASSERT_EQ(p.moves.size(), 3u);
  EXPECT_TRUE(p.unplaced.empty());
  // Largest first: y to the emptiest host (b), then z to c (spread: b has
  // one already), then x to b again (both have one; b has more room left).
  EXPECT_EQ(p.moves[0].container, "y");
  EXPECT_EQ(p.moves[0].target, "b");
  EXPECT_EQ(p.moves[1].container, "z");
  EXPECT_EQ(p.moves[1].target, "c");
  EXPECT_EQ(p.moves[2].container, "x");
  EXPECT_EQ(p.moves[2].target, "b");
  for (const auto& m : p.moves) EXPECT_EQ(m.source, "a");
}

TEST(PlanDrain, NeverOntoCordonedDownOrIncompatibleHosts) {
  std::vector<PlanHost> hosts = {host("a", 1000, 100), host("cordoned", 1000, 0),
                                 host("down", 1000, 0), host("arm", 1000, 0, 1),
                                 host("ok", 1000, 500)};
  hosts[1].cordoned = true;
  hosts[2].up = false;
  Plan p = planDrain("a", hosts, {ctr("x", "a", 100)}, sameClass);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].target, "ok");
}

TEST(PlanDrain, CpuOnlyBreaksTies) {
  // Every host busy (one machine's load average): still placed, on the
  // less busy of two equal hosts.
  std::vector<PlanHost> hosts = {host("a", 1000, 100), host("b", 1000, 0), host("c", 1000, 0)};
  hosts[1].cpu_percent = 100;
  hosts[2].cpu_percent = 95;
  Plan p = planDrain("a", hosts, {ctr("x", "a", 100)}, any);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].target, "c");
}

TEST(PlanDrain, AContainerNoHostCanTakeIsListedWithWhy) {
  std::vector<PlanHost> hosts = {host("a", 4000, 3000), host("b", 1000, 500)};
  Plan p = planDrain("a", hosts, {ctr("big", "a", 2000), ctr("small", "a", 100)}, any);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].container, "small");
  ASSERT_EQ(p.unplaced.size(), 1u);
  EXPECT_EQ(p.unplaced[0].container, "big");
  EXPECT_NE(p.unplaced[0].reason.find("2.0 GiB"), std::string::npos) << p.unplaced[0].reason;

  Plan alone = planDrain("a", {host("a", 1000, 100)}, {ctr("x", "a", 10)}, any);
  ASSERT_EQ(alone.unplaced.size(), 1u);
  EXPECT_NE(alone.unplaced[0].reason.find("no up, uncordoned, compatible host"), std::string::npos);
}

TEST(PlanDrain, PrefersAHostThatHoldsTheImageOnATie) {
  std::vector<PlanHost> hosts = {host("a", 1000, 100), host("b", 1000, 0), host("c", 1000, 0)};
  hosts[2].images = {"img"};
  Plan p = planDrain("a", hosts, {ctr("x", "a", 100)}, any);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].target, "c");
  EXPECT_FALSE(p.moves[0].sends_image);
}

TEST(PlanDrain, OnlyOntoHostsHoldingTheContainersSecrets) {
  std::vector<PlanHost> hosts = {host("a", 1000, 100), host("roomy", 1000, 0), host("keeper", 1000, 500)};
  hosts[2].secrets = {"db", "tls"};
  PlanContainer x = ctr("x", "a", 100), y = ctr("y", "a", 50), z = ctr("z", "a", 10);
  x.secrets = {"db"};
  z.secrets = {"missing"};
  Plan p = planDrain("a", hosts, {x, y, z}, any);
  ASSERT_EQ(p.moves.size(), 2u);
  EXPECT_EQ(p.moves[0].container, "x");
  EXPECT_EQ(p.moves[0].target, "keeper");  // not the roomier host without db
  EXPECT_EQ(p.moves[1].container, "y");
  EXPECT_EQ(p.moves[1].target, "roomy");
  ASSERT_EQ(p.unplaced.size(), 1u);
  EXPECT_EQ(p.unplaced[0].container, "z");
  EXPECT_NE(p.unplaced[0].reason.find("without its secrets"), std::string::npos) << p.unplaced[0].reason;
}

TEST(PlanRebalance, OnlyOntoHostsHoldingTheContainersSecrets) {
  std::vector<PlanHost> hosts = {host("a", 1000, 900), host("roomy", 1000, 0), host("keeper", 1000, 100)};
  hosts[2].secrets = {"db"};
  PlanContainer m = ctr("m", "a", 200);
  m.secrets = {"db"};
  Plan p = planRebalance(hosts, {m}, any, {.high_percent = 80, .low_percent = 50});
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].target, "keeper");
}

TEST(PlanRebalance, MarksAreCheckedBeforeAnythingIsPlanned) {
  EXPECT_NO_THROW(validateRebalanceOptions({}));
  EXPECT_THROW(validateRebalanceOptions({.high_percent = 50, .low_percent = 50}), Error);
  EXPECT_THROW(validateRebalanceOptions({.high_percent = 120, .low_percent = 50}), Error);
  EXPECT_THROW(validateRebalanceOptions({.high_percent = 80, .low_percent = 50, .max_moves = 0}), Error);
}

// Marks come from the wire as floats. Found by fuzz_coordinator: a huge one
// was cast to int for the error message (undefined behaviour, "high
// -2147483648" here), and NaN passed every comparison, so was accepted.
TEST(PlanRebalance, MarksThatAreNotFiniteOrHugeAreRefusedAndShownAsGiven) {
  try {
    validateRebalanceOptions({.high_percent = 1.5e31, .low_percent = 50});
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("high 1.5e+31"), std::string::npos) << e.what();
  }
  double nan = std::numeric_limits<double>::quiet_NaN();
  double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(validateRebalanceOptions({.high_percent = nan, .low_percent = 50}), Error);
  EXPECT_THROW(validateRebalanceOptions({.high_percent = 80, .low_percent = nan}), Error);
  EXPECT_THROW(validateRebalanceOptions({.high_percent = 80, .low_percent = -inf}), Error);
}

TEST(PlanRebalance, MovesFromAboveHighToBelowLowWithTheFewestMoves) {
  // a: 900 of 1000 (90 %). Down to 80 % needs 100 MiB off: the smallest
  // container that alone does it is the 150, not the 50s nor the 400.
  std::vector<PlanHost> hosts = {host("a", 1000, 900), host("b", 1000, 100), host("c", 1000, 600)};
  std::vector<PlanContainer> cs = {ctr("s1", "a", 50), ctr("s2", "a", 50), ctr("m", "a", 150),
                                   ctr("l", "a", 400), ctr("x", "a", 250)};
  Plan p = planRebalance(hosts, cs, any, {.high_percent = 80, .low_percent = 50});
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].container, "m");
  EXPECT_EQ(p.moves[0].target, "b");  // c is above low: it takes nothing
}

TEST(PlanRebalance, LargestFirstWhenNoSingleMoveIsEnough) {
  std::vector<PlanHost> hosts = {host("a", 1000, 950), host("b", 1000, 0), host("c", 1000, 0)};
  std::vector<PlanContainer> cs = {ctr("p", "a", 200), ctr("q", "a", 200), ctr("r", "a", 100)};
  Plan p = planRebalance(hosts, cs, any, {.high_percent = 60, .low_percent = 30});
  // 950 -> at most 600: 350 off, no single container has it: 200 + 200.
  ASSERT_EQ(p.moves.size(), 2u);
  EXPECT_EQ(p.moves[0].container, "p");
  EXPECT_EQ(p.moves[1].container, "q");
  EXPECT_NE(p.moves[0].target, p.moves[1].target);  // each to the one with most room
}

TEST(PlanRebalance, RespectsCooldownMaxMovesCordonAndCompatibility) {
  std::vector<PlanHost> hosts = {host("a", 1000, 900), host("b", 1000, 900), host("cord", 1000, 0),
                                 host("arm", 1000, 0, 1), host("free", 1000, 0)};
  hosts[2].cordoned = true;
  std::vector<PlanContainer> cs = {ctr("recent", "a", 300), ctr("old", "b", 300)};
  cs[0].last_moved_ms = 9'000;
  RebalanceOptions o{.high_percent = 80,
                     .low_percent = 50,
                     .max_moves = 5,
                     .now_ms = 10'000,
                     .cooldown_ms = 5'000};
  Plan p = planRebalance(hosts, cs, sameClass, o);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].container, "old");
  EXPECT_EQ(p.moves[0].target, "free");
  ASSERT_FALSE(p.notes.empty());
  EXPECT_NE(p.notes[0].find("cool-down"), std::string::npos);

  o.now_ms = 100'000;  // cool-down over; at most one move
  o.max_moves = 1;
  Plan one = planRebalance(hosts, cs, sameClass, o);
  EXPECT_EQ(one.moves.size(), 1u);
}

TEST(PlanRebalance, NothingToDoIsSaid) {
  Plan p = planRebalance({host("a", 1000, 100), host("b", 1000, 200)}, {}, any, {});
  EXPECT_TRUE(p.moves.empty());
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_NE(p.notes[0].find("nothing to do"), std::string::npos);
}

TEST(PlanRebalance, ATargetStopsTakingAtHigh) {
  // b may take up to 80 % = 800: 700 + 100 fits, the next 100 does not.
  std::vector<PlanHost> hosts = {host("a", 1000, 1000), host("b", 1000, 400)};
  std::vector<PlanContainer> cs;
  for (int i = 0; i < 10; ++i) cs.push_back(ctr("c" + std::to_string(i), "a", 100));
  Plan p = planRebalance(hosts, cs, any, {.high_percent = 80, .low_percent = 50, .max_moves = 10});
  EXPECT_EQ(p.moves.size(), 2u);  // a: 1000 -> 800; b: 400 -> 600
  for (const auto& m : p.moves) EXPECT_EQ(m.target, "b");
}

// --- the coordinator's own rebalance (--rebalance-every) --------------------------

TEST(PeriodicRebalance, PlansOnlyWhenNothingMovesAndEveryHostHasReported) {
  EXPECT_EQ(periodicRebalanceHold({}), "");
  PeriodicRebalanceState drain_recorded{.drained_hosts = {"hostA"}};
  EXPECT_EQ(periodicRebalanceHold(drain_recorded), "a drain of hostA is under way");
  PeriodicRebalanceState operation{.operations = 1};
  EXPECT_EQ(periodicRebalanceHold(operation), "a drain or rebalance is under way");
  PeriodicRebalanceState migrating{.migrations = 2};
  EXPECT_EQ(periodicRebalanceHold(migrating), "2 migration(s) under way");
  PeriodicRebalanceState unheard{.unheard_hosts = {"hostB", "hostC"}};
  EXPECT_EQ(periodicRebalanceHold(unheard),
            "hostB, hostC not heard from since the coordinator started");
}

TEST(PeriodicRebalance, NeverPicksAContainerThatOwesCleanup) {
  // a: 900 of 1000. "m" alone would bring it under 80 %, but it owes
  // cleanup: the next best is moved instead, and the plan says why.
  std::vector<PlanHost> hosts = {host("a", 1000, 900), host("b", 1000, 0)};
  std::vector<PlanContainer> cs = {ctr("m", "a", 150), ctr("l", "a", 400), ctr("s", "a", 50)};
  RebalanceOptions o{.high_percent = 80, .low_percent = 50};
  ASSERT_EQ(planRebalance(hosts, cs, any, o).moves.at(0).container, "m");  // without it
  Plan p = planPeriodicRebalance(hosts, cs, {"m"}, any, o);
  ASSERT_EQ(p.moves.size(), 1u);
  EXPECT_EQ(p.moves[0].container, "l");
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(p.notes[0], "m owes cleanup from an earlier migration: not moved by itself");
}

TEST(PeriodicRebalance, AHostWhoseOnlyCandidateOwesCleanupStaysAndTheNotesSayWhy) {
  // Its memory still counts: a is over the mark, yet nothing can move.
  std::vector<PlanHost> hosts = {host("a", 1000, 900), host("b", 1000, 0)};
  Plan p = planPeriodicRebalance(hosts, {ctr("m", "a", 900)}, {"m"}, any,
                                 {.high_percent = 80, .low_percent = 50});
  EXPECT_TRUE(p.moves.empty());
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_NE(p.notes[0].find("m owes cleanup"), std::string::npos) << p.notes[0];
}

TEST(PeriodicRebalance, WithNothingOwedItIsThePlainRebalance) {
  std::vector<PlanHost> hosts = {host("a", 1000, 950), host("b", 1000, 0), host("c", 1000, 0)};
  std::vector<PlanContainer> cs = {ctr("p", "a", 200), ctr("q", "a", 200), ctr("r", "a", 100)};
  RebalanceOptions o{.high_percent = 60, .low_percent = 30};
  Plan plain = planRebalance(hosts, cs, any, o);
  Plan periodic = planPeriodicRebalance(hosts, cs, {"elsewhere"}, any, o);
  ASSERT_EQ(periodic.moves.size(), plain.moves.size());
  for (size_t i = 0; i < plain.moves.size(); ++i) {
    EXPECT_EQ(periodic.moves[i].container, plain.moves[i].container);
    EXPECT_EQ(periodic.moves[i].target, plain.moves[i].target);
  }
  EXPECT_EQ(periodic.notes, plain.notes);
}

// --- post-copy or not ---

TEST(ChoosePostcopy, AskedForItRunsWhereBothHostsCanWhateverTheSize) {
  PostcopyChoice c = choosePostcopy(1, 7 * kMiB, "hostA", "", "hostB", "");
  EXPECT_TRUE(c.on);
  EXPECT_EQ(c.why, "on (asked)");
  EXPECT_FALSE(choosePostcopy(0, 4096 * kMiB, "hostA", "", "hostB", "").on);
}

TEST(ChoosePostcopy, AskedForItIsRefusedWithEachHostsReason) {
  try {
    choosePostcopy(1, 1024 * kMiB, "hostA", "no uffd", "hostB", "pipe too small");
    FAIL() << "refusal expected";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIncompatible);
    EXPECT_EQ(std::string(e.what()),
              "post-copy cannot run here (hostA: no uffd; hostB: pipe too small); migrate "
              "without --postcopy");
  }
  EXPECT_THROW(choosePostcopy(2, 1024 * kMiB, "hostA", "", "hostB", ""), Error);
}

TEST(ChoosePostcopy, AutoTakesItFromTheSizeWhereItPaysAndSaysWhy) {
  PostcopyChoice unable = choosePostcopy(-1, 1024 * kMiB, "hostA", "", "hostB", "turned off");
  EXPECT_FALSE(unable.on);
  EXPECT_EQ(unable.why, "off (auto: hostB: turned off)");
  PostcopyChoice small = choosePostcopy(-1, kPostcopyAutoBytes - 1, "hostA", "", "hostB", "");
  EXPECT_FALSE(small.on);
  EXPECT_NE(small.why.find("pauses about as briefly cold"), std::string::npos) << small.why;
  PostcopyChoice big = choosePostcopy(-1, kPostcopyAutoBytes, "hostA", "", "hostB", "");
  EXPECT_TRUE(big.on);
  EXPECT_NE(big.why.find("Pre-copy rounds go first"), std::string::npos) << big.why;
}

}  // namespace
}  // namespace ferry::coord
