// Test hosts on one machine: each TestHost is an Engine with its own state
// root and run dir (so its own runc root and cgroup parent), under one
// per-test directory. Destruction removes every container, mount, volume and
// directory it made, also when the test failed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/fs.h"

namespace ferry::testing {

// Skips (developer machine) or fails (CI=true) unless running as root with a
// CRIU that passes `criu check`. Returns "" when all is there, else the reason.
std::string missingPrerequisite();

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

// The spec of a counter container writing to volume `volume` at /data.
ContainerSpec counterSpec(const std::string& name, const std::string& volume);

// Whether any mount point lies below `dir`.
bool anyMountBelow(const fs::path& dir);

// Whether runc under this host's root knows any container.
bool runcHasContainers(const EngineConfig& cfg);

}  // namespace ferry::testing
