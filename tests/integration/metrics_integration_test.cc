// Metrics end to end (issue 17): `ferry cluster up` serves /metrics on the
// coordinator and every agent; a real Prometheus (Debian's) scrapes them
// every second; after a live migration its query API reports the migration,
// its downtime, and the bytes the agents streamed. The Grafana dashboard's
// queries name only series these live scrapes serve.
#include <regex>

#include "common/fs.h"
#include "engine/runtime/process.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/support/ci.h"
#include "tests/support/http_get.h"
#include "tests/support/prometheus_text.h"

namespace ferry::testing {
namespace {

constexpr const char* kPrometheus = "/usr/bin/prometheus";

// "http://127.0.0.2:4711/metrics" -> {"127.0.0.2", 4711}
std::pair<std::string, int> hostPort(const std::string& url) {
  std::smatch m;
  std::regex re(R"(^http://([0-9.]+):([0-9]+)/metrics$)");
  if (!std::regex_match(url, m, re)) throw std::runtime_error("not a metrics URL: " + url);
  return {m[1], std::stoi(m[2])};
}

std::string urlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

int freeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

class MetricsCluster : public ClusterMigration {
 protected:
  void SetUp() override {
    if (!fs::exists(kPrometheus)) {
      if (underCi()) FAIL() << "CI must run the metrics test: " << kPrometheus << " is missing (apt-get install prometheus)";
      GTEST_SKIP() << "skipped on this machine: " << kPrometheus << " is missing";
    }
    ClusterMigration::SetUp();
  }

  void TearDown() override {
    if (prometheus_.pid() > 0) {
      prometheus_.kill(SIGTERM);
      if (!prometheus_.waitFor(seconds(15))) prometheus_ = Child();  // SIGKILL and reap
    }
    prom_dir_.reset();
    ClusterMigration::TearDown();
  }

  // Prometheus scraping the coordinator and every agent each second.
  void startPrometheus() {
    prom_dir_.emplace(fs::temp_directory_path(), "ferry-test-prometheus-");
    std::string targets;
    auto add = [&](const std::string& url) {
      auto [host, port] = hostPort(url);
      targets += (targets.empty() ? "" : ", ") + ("'" + host + ":" + std::to_string(port) + "'");
    };
    ASSERT_FALSE(state_.coordinator_metrics_url.empty());
    add(state_.coordinator_metrics_url);
    for (const auto& h : state_.hosts) {
      ASSERT_FALSE(h.metrics_url.empty()) << h.name;
      add(h.metrics_url);
    }
    fs::path config = prom_dir_->path() / "prometheus.yml";
    writeFileAtomic(config, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                      "scrape_configs:\n  - job_name: ferry\n    static_configs:\n"
                      "      - targets: [" + targets + "]\n");
    port_ = freeLoopbackPort();
    prometheus_ = spawnChild({kPrometheus, "--config.file=" + config.string(),
                              "--storage.tsdb.path=" + (prom_dir_->path() / "tsdb").string(),
                              "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
                             (prom_dir_->path() / "prometheus.log").string());
    waitFor(
        [&] {
          if (prometheus_.poll()) {
            throw std::runtime_error("prometheus exited: " +
                                     readFile(prom_dir_->path() / "prometheus.log"));
          }
          try {
            return test::httpGet("127.0.0.1", port_, "/-/ready", seconds(2)).status == 200;
          } catch (const Error&) {
            return false;
          }
        },
        seconds(30), "prometheus to be ready on 127.0.0.1:" + std::to_string(port_));
  }

  // The query's first value, nullopt while it has none.
  std::optional<double> query(const std::string& promql) {
    test::HttpResponse r =
        test::httpGet("127.0.0.1", port_, "/api/v1/query?query=" + urlEncode(promql));
    if (r.status != 200) throw std::runtime_error("query " + promql + ": " + r.body);
    json j = json::parse(r.body);
    const json& result = j.at("data").at("result");
    if (result.empty()) return std::nullopt;
    return std::stod(result[0].at("value")[1].get<std::string>());
  }

  // Until `promql` has a value of at least `min`; that value.
  double awaitAtLeast(const std::string& promql, double min) {
    std::optional<double> v;
    waitFor(
        [&] {
          v = query(promql);
          return v && *v >= min;
        },
        seconds(30), "prometheus to report " + promql + " >= " + std::to_string(min));
    return *v;
  }

  std::optional<TempDir> prom_dir_;
  Child prometheus_;
  int port_ = 0;
};

TEST_F(MetricsCluster, PrometheusScrapesAMigrationFromTheCoordinatorAndTheAgents) {
  startPrometheus();
  // Every target is scraped: the coordinator and both agents.
  awaitAtLeast("count(up{job=\"ferry\"} == 1)", 1.0 + static_cast<double>(state_.hosts.size()));
  EXPECT_EQ(query("sum(ferry_migrations_total{outcome=\"committed\"})"), 0.0);
  awaitAtLeast("ferry_hosts{state=\"up\"}", 2);

  runDemo("hostA");
  // What the agents streamed before (the image imports), read from them.
  auto streamed = [&](const std::string& h, const std::string& direction) {
    auto [host, port] = hostPort(this->host(h).metrics_url);
    return *test::sampleValue(test::parseSamples(test::httpGet(host, port, "/metrics").body),
                              "ferry_agent_stream_bytes_total",
                              {{"host", h}, {"direction", direction}});
  };
  const double sent_before = streamed("hostA", "sent");
  const double received_before = streamed("hostB", "received");
  CliResult r = ferry({"migrate", "demo", "hostA", "hostB", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json f = json::parse(r.out);
  ASSERT_EQ(f["outcome"], "committed");

  EXPECT_EQ(awaitAtLeast("sum(ferry_migrations_total{outcome=\"committed\"})", 1), 1.0);
  EXPECT_EQ(awaitAtLeast("ferry_migration_downtime_seconds_count", 1), 1.0);
  // The histogram's sum is the downtime the migration reported.
  EXPECT_NEAR(*query("ferry_migration_downtime_seconds_sum"),
              f["downtime_ms"].get<double>() / 1000.0, 1e-6);
  EXPECT_EQ(awaitAtLeast("ferry_migration_bytes_total{kind=\"wire\"}", 1),
            f["bytes_wire"].get<double>());
  awaitAtLeast("ferry_migration_phase_seconds_count{phase=\"restore\"}", 1);
  // The agents streamed it: hostA sent what hostB received, at least the
  // migration's bytes on the wire.
  const double wire = f["bytes_wire"].get<double>();
  double sent = awaitAtLeast("ferry_agent_stream_bytes_total{host=\"hostA\",direction=\"sent\"}",
                             sent_before + wire);
  double received = awaitAtLeast(
      "ferry_agent_stream_bytes_total{host=\"hostB\",direction=\"received\"}",
      received_before + wire);
  EXPECT_EQ(sent - sent_before, received - received_before);
  awaitAtLeast("ferry_agent_containers_running{host=\"hostB\"}", 1);
  awaitAtLeast("ferry_containers{host=\"hostB\"}", 1);
  EXPECT_GT(awaitAtLeast("ferry_agent_memory_total_bytes{host=\"hostA\"}", 1), 0);

  // The dashboard asks only for what these daemons serve.
  std::set<std::string> served;
  for (const std::string& url : [&] {
         std::vector<std::string> all = {state_.coordinator_metrics_url};
         for (const auto& h : state_.hosts) all.push_back(h.metrics_url);
         return all;
       }()) {
    auto [host, port] = hostPort(url);
    auto names = test::metricNames(test::httpGet(host, port, "/metrics").body);
    served.insert(names.begin(), names.end());
  }
  for (const auto& n : test::dashboardMetricNames(FERRY_DASHBOARD)) {
    EXPECT_TRUE(served.count(n)) << "the dashboard queries " << n;
  }
}

TEST_F(MetricsCluster, TheClusterRecordKeepsEveryMetricsUrl) {
  std::optional<cluster::ClusterState> saved = cluster::readState(state_.dir);
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->coordinator_metrics_url, state_.coordinator_metrics_url);
  auto [chost, cport] = hostPort(saved->coordinator_metrics_url);
  EXPECT_EQ(chost, "127.0.0.1");
  EXPECT_EQ(test::httpGet(chost, cport, "/metrics").status, 200);
  for (const auto& h : saved->hosts) {
    auto [host, port] = hostPort(h.metrics_url);
    EXPECT_EQ(host, h.address) << h.name;
    test::HttpResponse r = test::httpGet(host, port, "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(test::sampleValue(test::parseSamples(r.body), "ferry_agent_cpu_percent",
                                {{"host", h.name}})
                  .has_value(),
              true)
        << h.name;
  }
}

}  // namespace
}  // namespace ferry::testing
