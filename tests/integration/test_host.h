// Test hosts on one machine: each TestHost is an Engine with its own state
// root and run dir (so its own runc root and cgroup parent), under one
// per-test directory. Destruction removes every container, mount, volume and
// directory it made, also when the test failed.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/bundle/bundle.h"
#include "engine/engine.h"
#include "common/fs.h"
#include "protocol/rpc.h"
#include "tests/support/ci.h"
#include "tests/support/string_stream.h"

namespace ferry::testing {

// Skips (developer machine) or fails (CI=true) unless running as root with a
// CRIU that passes `criu check`. Returns "" when all is there, else the reason.
std::string missingPrerequisite();

// In a test body or SetUp: fails under CI=true, else skips, when a
// prerequisite is missing (FAIL and GTEST_SKIP return from the caller).
#define FERRY_REQUIRE_PREREQUISITES()                                                         \
  do {                                                                                        \
    if (std::string missing = ::ferry::testing::missingPrerequisite(); !missing.empty()) {    \
      if (::ferry::testing::underCi()) FAIL() << "CI must run the integration tests: " << missing; \
      GTEST_SKIP() << "skipped on this machine: " << missing;                                 \
    }                                                                                         \
  } while (0)

class TestHost {
 public:
  TestHost(const std::string& name, const fs::path& state_parent, const fs::path& run_parent);
  ~TestHost();
  TestHost(const TestHost&) = delete;
  TestHost& operator=(const TestHost&) = delete;

  Engine& engine() { return *engine_; }
  const EngineConfig& config() const { return engine_->config(); }

  // Imports the counter test image as "counter".
  ImageRecord importTestImage();

 private:
  LocalCommandRunner runner_;
  std::unique_ptr<Engine> engine_;
};

// Unique per-test parents for state roots (/var/tmp) and run dirs (/run).
struct TestDirs {
  TestDirs();
  ~TestDirs();
  fs::path state;
  fs::path run;
};

// Polls `pred` every 20 ms; throws std::runtime_error "timed out after N ms
// waiting for WHAT" when it does not hold within `timeout`.
void waitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
             const std::string& what);

// The counter values a container printed ("counter N" lines), in order.
std::vector<unsigned long> counterValues(Engine& e, const std::string& name);
// A restored copy's log goes on from its source's (it came with the
// checkpoint): the values after `last`, the source's last one. Throws when
// `last` is not there (the log was not carried, or lost lines).
std::vector<unsigned long> valuesAfter(const std::vector<unsigned long>& v, unsigned long last);

// The spec of a counter container writing to volume `volume` at /data.
ContainerSpec counterSpec(const std::string& name, const std::string& volume);

// Whether any mount point lies below `dir`.
bool anyMountBelow(const fs::path& dir);

// Whether runc under this host's root knows any container.
bool runcHasContainers(const EngineConfig& cfg);

// Recomputes manifest.json of a checkpoint directory after a test edited a
// file in it on purpose (to get past verification to the fault under test).
void resealManifest(const fs::path& dir);

// One tar member for hostile archives: 'f' file (data), 'd' directory,
// 'l' symlink (data = target), 'h' hardlink (data = target path).
struct TarMember {
  std::string path;
  char type;
  std::string data;
};
std::string tarOf(const std::vector<TarMember>& members);
// The content of member `name` ("./name" too) of a tar file; throws if absent.
std::string tarMember(const fs::path& tar, const std::string& name);

// A bundle built from a checkpoint directory, with some entries' bytes
// replaced ("kind/name" -> bytes), e.g. {"rootfs/rootfs.tar", tarOf(...)}.
std::string bundleFromDir(const fs::path& dir, const std::map<std::string, std::string>& replace);

// Two test hosts, hostA and hostB, each with the counter image; skips or
// fails (CI) when root or CRIU is missing.
class TwoHostTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Runs the counter on A with volume "data" (holding a marker file) and
  // waits until it has counted to at least `min`.
  void runCounterOnA(const std::string& name, unsigned long min);
  fs::path checkpointDir(const std::string& tag) { return dirs_->state / ("ck-" + tag); }
  Engine& a() { return a_->engine(); }
  Engine& b() { return b_->engine(); }

  std::unique_ptr<TestDirs> dirs_;
  std::unique_ptr<TestHost> a_, b_;
};

// The value the counter last wrote to volume "data".
unsigned long volumeCounter(Engine& e);

// Runs `body(stop)` on a thread until the guard is destroyed: an agent's
// or a coordinator's run loop in-process.
struct Running {
  std::atomic<bool> stop{false};
  std::thread thread;
  template <class F>
  explicit Running(F&& body) : thread([this, body] { body(stop); }) {}
  ~Running() {
    stop = true;
    thread.join();
  }
};

// The coordinator's hosts, by name: up or not (a ListHosts request).
std::map<std::string, bool> hostsUp(proto::RpcClient& cli);

// The containers the coordinator knows on `host` ("" for all): name -> status.
std::map<std::string, std::string> containersOn(proto::RpcClient& cli, const std::string& host);

}  // namespace ferry::testing
