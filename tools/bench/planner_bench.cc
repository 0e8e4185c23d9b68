// The placement planners at scale (not a test): a synthetic cluster of H
// hosts with C containers each, in 3 compatibility classes, loads spread
// from idle to overloaded. Times a one-host drain plan and a full rebalance
// plan (no move limit), best of R runs, and prints JSON.
//
//   planner-bench [--hosts 10000] [--containers 30] [--runs 5]
//
// Aims (issue 6): drain plan under 100 ms, rebalance plan under 1 s.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "coordinator/planner.h"

using namespace ferry::coord;

int main(int argc, char** argv) {
  int hosts_n = 10000, per_host = 30, runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--hosts"))
      hosts_n = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--containers"))
      per_host = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs"))
      runs = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: planner-bench [--hosts H] [--containers C] [--runs R]\n");
      return 2;
    }
  }
  std::mt19937_64 rng(42);
  std::vector<PlanHost> hosts;
  std::vector<PlanContainer> containers;
  const uint64_t gib = uint64_t{1} << 30;
  for (int h = 0; h < hosts_n; ++h) {
    PlanHost host;
    host.name = "host" + std::to_string(h);
    host.memory_capacity = 64 * gib;
    host.compat_class = h % 3;
    host.cpu_percent = static_cast<double>(rng() % 100);
    host.images = {"img" + std::to_string(h % 7)};
    // Container sizes make the host's load anywhere from ~5 % to ~110 %.
    uint64_t scale = 1 + rng() % 48;
    for (int c = 0; c < per_host; ++c) {
      PlanContainer ctr;
      ctr.name = host.name + "-c" + std::to_string(c);
      ctr.host = host.name;
      ctr.image_id = "img" + std::to_string(c % 7);
      ctr.memory_bytes = (scale * gib / 20) * (50 + rng() % 100) / 100;
      ctr.last_moved_ms = (rng() % 10 == 0) ? 1 : 0;
      host.memory_used += ctr.memory_bytes;
      containers.push_back(ctr);
    }
    hosts.push_back(host);
  }
  auto compatible = [](int a, int b) { return a == b || (a == 0 && b == 1); };
  auto best = [&](auto&& f) {
    double best_ms = 1e18;
    for (int r = 0; r < runs; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      f();
      best_ms = std::min(
          best_ms,
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return best_ms;
  };
  Plan drain, rebalance;
  double drain_ms = best([&] { drain = planDrain("host123", hosts, containers, compatible); });
  RebalanceOptions o{
      .high_percent = 80, .low_percent = 40, .max_moves = 1 << 30, .now_ms = 1000000};
  double rebalance_ms = best([&] { rebalance = planRebalance(hosts, containers, compatible, o); });
  std::printf(
      "{\"hosts\": %d, \"containers_per_host\": %d, \"drain_ms\": %.2f, \"drain_moves\": %zu, "
      "\"drain_unplaced\": %zu, \"drain_aim_ms\": 100, \"rebalance_ms\": %.2f, "
      "\"rebalance_moves\": %zu, \"rebalance_aim_ms\": 1000}\n",
      hosts_n, per_host, drain_ms, drain.moves.size(), drain.unplaced.size(), rebalance_ms,
      rebalance.moves.size());
}
