// The metrics endpoint (metrics/, issue 17) over real HTTP on 127.0.0.1:0:
// what a migration's end records, through the coordinator's own mapping
// from its Finish and figures (coordinator/metrics.h), is what a scrape
// finds; the gauges; an agent's series; and the errors at start.
#include <gtest/gtest.h>

#include <regex>


#include "coordinator/metrics.h"
#include "metrics/agent_metrics.h"
#include "metrics/coordinator_metrics.h"
#include "metrics/metrics_server.h"
#include "protocol/figures_json.h"
#include "tests/support/error_of.h"
#include "tests/support/http_get.h"
#include "tests/support/prometheus_text.h"

namespace ferry {
namespace {

using test::sampleValue;

std::vector<test::Sample> scrape(const metrics::MetricsServer& server) {
  test::HttpResponse r = test::httpGet("127.0.0.1", server.port(), "/metrics");
  EXPECT_EQ(r.status, 200) << r.body;
  return test::parseSamples(r.body);
}

// Figures as the coordinator holds them once the source answered
// (Coordinator::noteFigures) and its own phases were timed.
proto::FiguresRecord committedFigures() {
  proto::FiguresRecord rec;
  auto f = rec.get();
  f.setDowntimeMs(180);
  f.setBytesRaw(64 << 20);
  f.setBytesWire(40 << 20);
  f.setFinalBytesWire(8 << 20);
  rec.addPhase("plan", 3);
  rec.addPhase("prepare", 40);
  rec.addPhase("dump", 120);
  rec.addPhase("transfer", 30);
  rec.addPhase("restore", 50);
  rec.addPhase("commit", 10);
  return rec;
}

TEST(Metrics, AMigrationsEndIsScrapedAsCountDowntimeBytesAndPhases) {
  metrics::CoordinatorMetrics m;
  metrics::MetricsServer server("127.0.0.1:0");
  server.add(m.registry());
  ASSERT_GT(server.port(), 0);
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");

  auto before = scrape(server);
  EXPECT_EQ(sampleValue(before, "ferry_migrations_total", {{"outcome", "committed"}}), 0.0);
  EXPECT_EQ(sampleValue(before, "ferry_migration_downtime_seconds_count"), 0.0);

  proto::FiguresRecord rec = committedFigures();
  m.migrationEnded(coord::migrationEndOf(coord::mact::Finish{}, rec.reader()));

  auto after = scrape(server);
  EXPECT_EQ(sampleValue(after, "ferry_migrations_total", {{"outcome", "committed"}}), 1.0);
  EXPECT_EQ(sampleValue(after, "ferry_migrations_total", {{"outcome", "rolled-back"}}), 0.0);
  EXPECT_EQ(sampleValue(after, "ferry_migration_downtime_seconds_count"), 1.0);
  EXPECT_NEAR(*sampleValue(after, "ferry_migration_downtime_seconds_sum"), 0.18, 1e-9);
  // 180 ms: above the 0.1 bucket, within 0.2.
  EXPECT_EQ(sampleValue(after, "ferry_migration_downtime_seconds_bucket", {{"le", "0.1"}}), 0.0);
  EXPECT_EQ(sampleValue(after, "ferry_migration_downtime_seconds_bucket", {{"le", "0.2"}}), 1.0);
  EXPECT_EQ(sampleValue(after, "ferry_migration_bytes_total", {{"kind", "checkpoint"}}),
            double(64 << 20));
  EXPECT_EQ(sampleValue(after, "ferry_migration_bytes_total", {{"kind", "wire"}}),
            double(40 << 20));
  EXPECT_EQ(sampleValue(after, "ferry_migration_bytes_total", {{"kind", "frozen_wire"}}),
            double(8 << 20));
  EXPECT_EQ(sampleValue(after, "ferry_migration_phase_seconds_count", {{"phase", "dump"}}), 1.0);
  EXPECT_NEAR(*sampleValue(after, "ferry_migration_phase_seconds_sum", {{"phase", "dump"}}), 0.12,
              1e-9);
  EXPECT_EQ(sampleValue(after, "ferry_migration_phase_seconds_count", {{"phase", "commit"}}), 1.0);
}

TEST(Metrics, ARollbackCountsAsRolledBackAndALostOneAsLost) {
  metrics::CoordinatorMetrics m;
  metrics::MetricsServer server("127.0.0.1:0");
  server.add(m.registry());
  // Failed before the source reported: no downtime measured.
  proto::FiguresRecord early;
  early.addPhase("plan", 2);
  early.addPhase("rollback", 20);
  Error why(ErrorCategory::kRetryable, "hostB went down");
  m.migrationEnded(coord::migrationEndOf(coord::mact::Finish{.failure = why}, early.reader()));
  proto::FiguresRecord late = committedFigures();
  m.migrationEnded(
      coord::migrationEndOf(coord::mact::Finish{.failure = why, .lost = true}, late.reader()));

  auto s = scrape(server);
  EXPECT_EQ(sampleValue(s, "ferry_migrations_total", {{"outcome", "rolled-back"}}), 1.0);
  EXPECT_EQ(sampleValue(s, "ferry_migrations_total", {{"outcome", "lost"}}), 1.0);
  EXPECT_EQ(sampleValue(s, "ferry_migrations_total", {{"outcome", "committed"}}), 0.0);
  // Only the lost one had a downtime measured (its source answered).
  EXPECT_EQ(sampleValue(s, "ferry_migration_downtime_seconds_count"), 1.0);
  EXPECT_EQ(sampleValue(s, "ferry_migration_phase_seconds_count", {{"phase", "rollback"}}), 1.0);
}

TEST(Metrics, APhaseNameFromTheWireOutsideTheKnownOnesIsOther) {
  proto::FiguresRecord rec;
  rec.addPhase("dump", 1);
  rec.addPhase("a\"label\nno one expects", 1);
  metrics::MigrationEnd end = coord::migrationEndOf(coord::mact::Finish{}, rec.reader());
  ASSERT_EQ(end.phase_seconds.size(), 2u);
  EXPECT_EQ(end.phase_seconds[0].first, "dump");
  EXPECT_EQ(end.phase_seconds[1].first, "other");
}

TEST(Metrics, GaugesFollowTheHostsAndAHostGoneLosesItsSeries) {
  metrics::CoordinatorMetrics m;
  metrics::MetricsServer server("127.0.0.1:0");
  server.add(m.registry());
  m.hosts({.up = 2, .down = 1, .cordoned = 1});
  m.containers({{"hostA", 3}, {"hostB", 0}});
  m.drainEnded(true);
  m.rebalanceMove("moved");
  m.rebalanceMove("failed");
  auto s = scrape(server);
  EXPECT_EQ(sampleValue(s, "ferry_hosts", {{"state", "up"}}), 2.0);
  EXPECT_EQ(sampleValue(s, "ferry_hosts", {{"state", "down"}}), 1.0);
  EXPECT_EQ(sampleValue(s, "ferry_hosts", {{"state", "cordoned"}}), 1.0);
  EXPECT_EQ(sampleValue(s, "ferry_containers", {{"host", "hostA"}}), 3.0);
  EXPECT_EQ(sampleValue(s, "ferry_containers", {{"host", "hostB"}}), 0.0);
  EXPECT_EQ(sampleValue(s, "ferry_drains_total", {{"outcome", "complete"}}), 1.0);
  EXPECT_EQ(sampleValue(s, "ferry_rebalance_moves_total", {{"outcome", "moved"}}), 1.0);
  EXPECT_EQ(sampleValue(s, "ferry_rebalance_moves_total", {{"outcome", "failed"}}), 1.0);

  m.containers({{"hostB", 4}});
  s = scrape(server);
  EXPECT_EQ(sampleValue(s, "ferry_containers", {{"host", "hostA"}}), std::nullopt);
  EXPECT_EQ(sampleValue(s, "ferry_containers", {{"host", "hostB"}}), 4.0);
}

TEST(Metrics, AnAgentsLoadContainersAndStreamedBytesCarryItsHostName) {
  metrics::AgentMetrics m("hostA");
  metrics::MetricsServer server("127.0.0.1:0");
  server.add(m.registry());
  m.load(37.5, 3 << 20, 8 << 20);
  m.containersRunning(2);
  m.streamed(metrics::Direction::kSent, 1000);
  m.streamed(metrics::Direction::kSent, 24);
  m.streamed(metrics::Direction::kReceived, 7);
  auto s = scrape(server);
  std::map<std::string, std::string> a = {{"host", "hostA"}};
  EXPECT_EQ(sampleValue(s, "ferry_agent_cpu_percent", a), 37.5);
  EXPECT_EQ(sampleValue(s, "ferry_agent_memory_used_bytes", a), double(3 << 20));
  EXPECT_EQ(sampleValue(s, "ferry_agent_memory_total_bytes", a), double(8 << 20));
  EXPECT_EQ(sampleValue(s, "ferry_agent_containers_running", a), 2.0);
  EXPECT_EQ(sampleValue(s, "ferry_agent_stream_bytes_total",
                        {{"host", "hostA"}, {"direction", "sent"}}),
            1024.0);
  EXPECT_EQ(sampleValue(s, "ferry_agent_stream_bytes_total",
                        {{"host", "hostA"}, {"direction", "received"}}),
            7.0);
}

TEST(Metrics, ATakenPortFailsAtStartNamingTheAddress) {
  metrics::MetricsServer first("127.0.0.1:0");
  std::string taken = "127.0.0.1:" + std::to_string(first.port());
  Error e = test::thrownError([&] { metrics::MetricsServer second(taken); });
  EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
  EXPECT_NE(std::string(e.what()).find("cannot serve metrics on " + taken), std::string::npos)
      << e.what();
}

TEST(Metrics, TheAddressIsIpv4AndAPort) {
  EXPECT_EQ(metrics::parseListenAddress("127.0.0.1:9464").port, 9464);
  EXPECT_EQ(metrics::parseListenAddress("0.0.0.0:0").host, "0.0.0.0");
  for (const char* bad : {"127.0.0.1", "localhost:9464", "127.0.0.1:", "127.0.0.1:65536",
                          "127.0.0.1:-1", "127.0.0.1:94x", ":9464"}) {
    Error e = test::thrownError([&] { metrics::parseListenAddress(bad); });
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << bad;
  }
}

// Every metric the Grafana dashboard's queries name is one a scrape of the
// daemons' real registries serves (Grafana itself is not installable here):
// a renamed series fails this, not an operator's empty panel.
TEST(Metrics, EveryMetricTheDashboardQueriesIsScraped) {
  std::set<std::string> used = test::dashboardMetricNames(FERRY_DASHBOARD);

  // Both daemons' series, after one migration and a heartbeat's gauges.
  metrics::CoordinatorMetrics c;
  metrics::AgentMetrics a("hostA");
  metrics::MetricsServer cs("127.0.0.1:0"), as("127.0.0.1:0");
  cs.add(c.registry());
  as.add(a.registry());
  proto::FiguresRecord rec = committedFigures();
  c.migrationEnded(coord::migrationEndOf(coord::mact::Finish{}, rec.reader()));
  c.hosts({.up = 2});
  c.containers({{"hostA", 1}});
  a.load(10, 1, 2);
  std::set<std::string> served;
  for (const auto* server : {&cs, &as}) {
    auto names = test::metricNames(test::httpGet("127.0.0.1", server->port(), "/metrics").body);
    served.insert(names.begin(), names.end());
  }
  for (const auto& n : used) EXPECT_TRUE(served.count(n)) << "the dashboard queries " << n;
  // And every ferry series has a panel (a histogram by one of its parts).
  for (const auto& name : served) {
    if (name.rfind("ferry_", 0) != 0) continue;
    std::string family = std::regex_replace(name, std::regex("_(bucket|sum|count)$"), "");
    bool shown = false;
    for (const auto& n : used) shown = shown || n.rfind(family, 0) == 0;
    EXPECT_TRUE(shown) << "no panel shows " << family;
  }
}

}  // namespace
}  // namespace ferry
