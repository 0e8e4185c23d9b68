// A local cluster whose coordinator and agents each run in a network
// namespace of the test's own (test_network.h), with CurveZMQ keys (their
// addresses are not loopback ones). The cluster goes before the namespaces;
// a failed test's logs are kept under /var/tmp/ferry-<kind>-logs/TEST.
#pragma once

#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_network.h"

namespace ferry::testing {
namespace {

class NamespacedCluster : public ClusterMigration {
 protected:
  explicit NamespacedCluster(std::string kind) : kind_(std::move(kind)) {}

  void configure(cluster::ClusterOptions& o) override {
    net_ = std::make_unique<TestNetwork>(std::vector<std::string>{"coordinator", "hostA", "hostB"});
    fs::path keys = dir_ / "keys";
    ProcessResult k =
        runner_.run({FERRY_BIN, "keys", "generate", keys.string(), "--hosts", "hostA,hostB"}, {});
    ASSERT_TRUE(k.ok()) << k.err;
    o.keys_dir = keys;
    o.coordinator_address = net_->address("coordinator");
    o.coordinator_launcher = net_->launcher("coordinator");
    o.host_placements = {{net_->address("hostA"), net_->launcher("hostA")},
                         {net_->address("hostB"), net_->launcher("hostB")}};
  }

  void TearDown() override {
    if (HasFailure() && !dir_.empty()) {
      // The cluster's directory goes with the test: its logs are kept for
      // whoever looks at the failure.
      fs::path keep = fs::path("/var/tmp/ferry-" + kind_ + "-logs") /
                      ::testing::UnitTest::GetInstance()->current_test_info()->name();
      bestEffort("keeping the logs", [&] {
        fs::remove_all(keep);
        fs::create_directories(keep.parent_path());
        fs::copy(dir_ / "logs", keep, fs::copy_options::recursive);
        std::printf("logs kept in %s\n", keep.c_str());
      });
    }
    ClusterMigration::TearDown();
    net_.reset();
  }

  std::unique_ptr<TestNetwork> net_;

 private:
  std::string kind_;
};

}  // namespace
}  // namespace ferry::testing
