// `ferry cluster up` and `ferry cluster down` (tools/cluster.h) with the real
// ferry-coordinator, ferry-agent and ferry-engine: the hosts register, a
// second cluster in the same directory is refused, and down leaves no
// process, mount, run dir, cgroup or container behind -- also of a container
// started behind the agents' backs. A failing agent fails `up` with its log.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "engine/runtime/process.h"
#include "protocol/rpc.h"
#include "test_host.h"
#include "tools/cluster.h"

namespace ferry::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kPort = 7391;  // not the default 7000: a real cluster may be up

// The build's tools/ directory: findTool finds agent/ and coordinator/
// beside it.
fs::path binDir() { return fs::path(FERRY_ENGINE_BIN).parent_path(); }

// Processes (other than this one) whose command line mentions `text`.
std::vector<std::string> processesMentioning(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (pid == std::to_string(::getpid())) continue;
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(text) != std::string::npos) out.push_back(pid + ": " + cmd);
  }
  return out;
}

// The cluster's cgroup directories that exist, in any hierarchy.
std::vector<fs::path> cgroupDirs(const cluster::ClusterState& s) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    fs::path p = e.path() / fs::path(s.cgroup_base).relative_path();
    if (pathExists(p)) out.push_back(p);
  }
  if (pathExists(fs::path("/sys/fs/cgroup") / fs::path(s.cgroup_base).relative_path())) {
    out.push_back(fs::path("/sys/fs/cgroup") / fs::path(s.cgroup_base).relative_path());
  }
  return out;
}

// The run dirs of local clusters (/run/ferry-cluster-*).
std::set<fs::path> clusterRunDirs() {
  std::set<fs::path> out;
  for (const auto& e : fs::directory_iterator("/run")) {
    if (e.path().filename().string().rfind("ferry-cluster-", 0) == 0) out.insert(e.path());
  }
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "\n  " + s;
  return out;
}

class ClusterIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    FERRY_REQUIRE_PREREQUISITES();
    dir_ = std::make_unique<TempDir>("/var/tmp", "ferry-cluster-test-");
    ::chmod(dir_->path().c_str(), 0711);  // containers in user namespaces reach their rootfs
  }

  void TearDown() override {
    if (!dir_) return;
    // Whatever a failed test left running.
    if (pathExists(dir() / "cluster.json")) {
      try {
        cluster::down(dir());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "test cleanup: %s\n", e.what());
      }
    }
    dir_.reset();
  }

  const fs::path& dir() const { return dir_->path(); }

  cluster::ClusterOptions options(int hosts) {
    return {.hosts = hosts,
            .dir = dir(),
            .port = kPort,
            .heartbeat = milliseconds(200),
            .wait = seconds(20),
            .bin_dir = binDir()};
  }

  // Runs ferry-engine against one cluster host's root, the way an operator
  // would behind the agent's back; returns its stdout.
  std::string engineOn(const cluster::ClusterHost& h, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {FERRY_ENGINE_BIN, "--host",    h.name,    "--root",
                                     h.root,           "--run-dir", h.run_dir, "--cgroup-parent",
                                     h.cgroup_parent,  "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    LocalCommandRunner r;
    ProcessResult p = r.run(argv, {.timeout = seconds(60)});
    if (!p.ok()) throw std::runtime_error("ferry-engine " + args.front() + ": " + p.err + p.out);
    return p.out;
  }

  std::unique_ptr<TempDir> dir_;
};

std::map<std::string, bool> hostsUp(proto::RpcClient& cli) {
  auto reply = cli.call([](proto::Message::Builder m) { m.setListHosts(); }, seconds(5));
  std::map<std::string, bool> up;
  for (auto h : reply->root<proto::Message>().getHosts()) up[h.getName().cStr()] = h.getUp();
  return up;
}

TEST_F(ClusterIntegration, UpRegistersEveryHostAndDownLeavesNothingBehind) {
  // A record whose processes are gone is replaced. Its "coordinator" is this
  // very process, under another start time: a reused pid is not a live cluster.
  writeFileAtomic(dir() / "cluster.json", json{{"dir", dir()},
                                               {"id", "00000000"},
                                               {"coordinator_endpoint", "tcp://127.0.0.1:1"},
                                               {"coordinator_pid", ::getpid()},
                                               {"coordinator_start_time", 1},
                                               {"run_base", "/run/ferry-cluster-00000000"},
                                               {"cgroup_base", "/ferry-cluster-00000000"},
                                               {"hosts", json::array()}}
                                              .dump());

  std::vector<std::string> progress;
  cluster::ClusterOptions opts = options(2);
  opts.agent_args = {"--heartbeat", "200"};  // extra options reach every agent
  cluster::ClusterState s =
      cluster::up(opts, [&](const std::string& line) { progress.push_back(line); });

  ASSERT_EQ(s.hosts.size(), 2u);
  EXPECT_EQ(s.hosts[0].name, "hostA");
  EXPECT_EQ(s.hosts[1].name, "hostB");
  EXPECT_EQ(s.hosts[1].address, "127.0.0.3");
  // Without keys, a unix socket only root may open (issue 14, hole 7).
  EXPECT_EQ(s.coordinator_endpoint, "ipc://" + (s.run_base / "coordinator.sock").string());
  struct stat sock {};
  ASSERT_EQ(::stat((s.run_base / "coordinator.sock").c_str(), &sock), 0);
  EXPECT_EQ(sock.st_mode & 07777, 0600u);
  EXPECT_EQ(sock.st_uid, 0u);
  EXPECT_EQ(s.hosts[0].root, dir() / "hosts" / "hostA");
  // conmon's socket paths must stay short, whatever DIR is.
  EXPECT_EQ(s.hosts[0].run_dir, "/run/ferry-cluster-" + s.id + "/hostA");
  EXPECT_EQ(s.hosts[0].cgroup_parent, "/ferry-cluster-" + s.id + "/hostA");
  EXPECT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), "2/2 hosts up") << joined(progress);

  // The record names the live processes.
  auto record = cluster::readState(dir());
  ASSERT_TRUE(record);
  EXPECT_EQ(record->coordinator_pid, s.coordinator_pid);
  std::vector<int> pids = {s.coordinator_pid};
  for (size_t i = 0; i < s.hosts.size(); ++i) {
    EXPECT_EQ(record->hosts[i].pid, s.hosts[i].pid);
    pids.push_back(s.hosts[i].pid);
  }
  for (int pid : pids) EXPECT_TRUE(processAlive(pid)) << pid;
  EXPECT_TRUE(cluster::anyRunning(*record));
  std::string cmd = readFile("/proc/" + std::to_string(s.hosts[1].pid) + "/cmdline");
  EXPECT_TRUE(cmd.ends_with(std::string("--heartbeat") + '\0' + "200" + '\0')) << cmd;
  EXPECT_EQ(json(*record), json(s));

  zmq::context_t ctx;
  proto::RpcClient cli(ctx, s.coordinator_endpoint);
  auto up = hostsUp(cli);
  EXPECT_TRUE(up["hostA"]);
  EXPECT_TRUE(up["hostB"]);

  // A second cluster in the same directory is refused, and the first one
  // goes on.
  try {
    cluster::up(options(2));
    ADD_FAILURE() << "a second up in the same directory was not refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
    EXPECT_NE(std::string(e.what()).find("already up in " + dir().string()), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("ferry cluster down --dir " + dir().string()),
              std::string::npos)
        << e.what();
  }
  for (int pid : pids) EXPECT_TRUE(processAlive(pid)) << pid;
  EXPECT_EQ(cluster::readState(dir())->coordinator_pid, s.coordinator_pid);

  // A container on hostA, started with the host-local tool: it is in the
  // cluster's cgroups, and hostA's agent reports it (they share the root).
  const cluster::ClusterHost& a = s.hosts[0];
  engineOn(a, {"image", "import", "counter", FERRY_TEST_IMAGE});
  json web = json::parse(
      engineOn(a, {"run", "--name", "web", "-v", "data:/data", "counter", "/usr/local/bin/counter",
                   "--file", "/data/counter", "--interval-ms", "100"}));
  int web_pid = web.at("pid").get<int>();
  ASSERT_TRUE(processAlive(web_pid));
  EXPECT_NE(readFile("/proc/" + std::to_string(web_pid) + "/cgroup").find(a.cgroup_parent + "/web"),
            std::string::npos);
  EXPECT_FALSE(cgroupDirs(s).empty());
  waitFor(
      [&] {
        auto r =
            cli.call([](proto::Message::Builder m) { m.setListContainers("hostA"); }, seconds(5));
        for (auto c : r->root<proto::Message>().getContainers()) {
          if (std::string(c.getName().cStr()) == "web") return true;
        }
        return false;
      },
      seconds(10), "hostA's agent to report web");
  // With its pid, as the host reports it in its next heartbeat (`ferry ps
  // --json` showed 0 for good; the listing can come before that heartbeat).
  uint32_t listed_pid = 0;
  waitFor(
      [&] {
        auto r =
            cli.call([](proto::Message::Builder m) { m.setListContainers("hostA"); }, seconds(5));
        for (auto c : r->root<proto::Message>().getContainers()) {
          if (std::string(c.getName().cStr()) == "web") listed_pid = c.getPid();
        }
        return listed_pid == static_cast<uint32_t>(web_pid);
      },
      seconds(10), "the coordinator to list web with its pid " + std::to_string(web_pid));
  EXPECT_EQ(listed_pid, static_cast<uint32_t>(web_pid));

  std::vector<std::string> down_progress;
  cluster::DownReport report =
      cluster::down(dir(), [&](const std::string& line) { down_progress.push_back(line); });
  EXPECT_EQ(report.processes_stopped, 3);
  EXPECT_EQ(report.containers_removed, 1);
  EXPECT_TRUE(report.problems.empty()) << joined(report.problems);

  for (int pid : pids) EXPECT_FALSE(processAlive(pid)) << pid;
  EXPECT_FALSE(processAlive(web_pid));
  EXPECT_EQ(processesMentioning(dir().string()), std::vector<std::string>{});
  EXPECT_EQ(processesMentioning(s.run_base.string()), std::vector<std::string>{});
  EXPECT_FALSE(anyMountBelow(dir()));
  EXPECT_FALSE(anyMountBelow(s.run_base));
  EXPECT_FALSE(pathExists(s.run_base));
  EXPECT_FALSE(runcHasContainers({.run_dir = a.run_dir}));
  EXPECT_EQ(cgroupDirs(s), std::vector<fs::path>{});
  EXPECT_FALSE(pathExists(dir() / "cluster.json"));
  EXPECT_FALSE(pathExists(a.root / "containers" / "web"));
  // State and logs stay for the next up.
  EXPECT_TRUE(pathExists(a.root / "images"));
  EXPECT_NE(readFile(a.log).find("agent hostA up"), std::string::npos);

  // Nothing left to take down is a clear error.
  try {
    cluster::down(dir());
    ADD_FAILURE() << "a second down did not fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("no cluster in " + dir().string()), std::string::npos)
        << e.what();
  }
}

TEST_F(ClusterIntegration, AgentFailingAtStartupFailsUpWithItsLogAndStopsTheRest) {
  // hostB's engine cannot create its container store.
  makeDirs(dir() / "hosts" / "hostB");
  writeFileAtomic(dir() / "hosts" / "hostB" / "containers", "not a directory\n");
  std::set<fs::path> run_dirs = clusterRunDirs();
  try {
    cluster::up(options(2));
    ADD_FAILURE() << "up succeeded with a broken hostB";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent) << msg;
    EXPECT_NE(msg.find("agent hostB exited during startup (exit code 1)"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find((dir() / "logs" / "hostB.log").string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("ferry-agent: error:"), std::string::npos) << msg;  // the log's tail
    EXPECT_NE(msg.find("run it again"), std::string::npos) << msg;
  }
  EXPECT_EQ(processesMentioning(dir().string()), std::vector<std::string>{});
  EXPECT_FALSE(pathExists(dir() / "cluster.json"));
  EXPECT_EQ(clusterRunDirs(), run_dirs);
}

// The coordinator's state outlives `down`: right after it, the last run's
// hosts are still listed as up. A new up must wait for its own agents'
// registrations, not take the old records for them.
TEST_F(ClusterIntegration, UpRightAfterDownWaitsForItsOwnAgents) {
  cluster::ClusterState first = cluster::up(options(1));
  cluster::DownReport report = cluster::down(dir());
  ASSERT_TRUE(report.problems.empty()) << joined(report.problems);

  // hostA cannot start now: up must notice, though the coordinator still
  // lists hostA as up.
  fs::path containers = first.hosts[0].root / "containers";
  removeTree(containers);
  writeFileAtomic(containers, "not a directory\n");
  try {
    cluster::up(options(1));
    ADD_FAILURE() << "up took hostA's record from the last run for a live agent";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("agent hostA exited during startup"), std::string::npos)
        << e.what();
  }

  // Mended, the next up goes through; it says why it waits.
  removeTree(containers);
  std::vector<std::string> progress;
  cluster::ClusterState s =
      cluster::up(options(1), [&](const std::string& line) { progress.push_back(line); });
  EXPECT_TRUE(processAlive(s.hosts[0].pid));
  EXPECT_NE(joined(progress).find("still listed as up from the previous run: hostA"),
            std::string::npos)
      << joined(progress);
  report = cluster::down(dir());
  EXPECT_EQ(report.processes_stopped, 2);
  EXPECT_TRUE(report.problems.empty()) << joined(report.problems);
}

TEST_F(ClusterIntegration, PortInUseIsRefusedBeforeAnythingStarts) {
  // Only a cluster with keys listens on TCP.
  cluster::ClusterOptions with_keys = options(1);
  with_keys.keys_dir = dir() / "keys";
  for (const char* n : {"coordinator", "hostA", "client"}) {
    proto::writeKeyPair(with_keys.keys_dir, n, proto::generateKeyPair());
  }
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;  // an earlier test's connections may linger in TIME_WAIT
  ASSERT_EQ(::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(kPort);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0)
      << std::strerror(errno);
  ASSERT_EQ(::listen(s.get(), 1), 0);
  try {
    cluster::up(with_keys);
    ADD_FAILURE() << "up succeeded on a port in use";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
    EXPECT_NE(std::string(e.what()).find("port " + std::to_string(kPort)), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("already in use"), std::string::npos) << e.what();
  }
  EXPECT_EQ(processesMentioning(dir().string()), std::vector<std::string>{});
  EXPECT_FALSE(pathExists(dir() / "cluster.json"));
}

TEST(ClusterTools, FoundInABuildTreeOrNamedAsMissing) {
  EXPECT_EQ(cluster::findTool("ferry-agent", binDir()), fs::canonical(FERRY_AGENT_BIN));
  EXPECT_EQ(cluster::findTool("ferry-coordinator", binDir()), fs::canonical(FERRY_COORDINATOR_BIN));
  EXPECT_EQ(cluster::findTool("ferry-engine", binDir()), fs::canonical(FERRY_ENGINE_BIN));
  try {
    cluster::findTool("ferry-no-such-tool", binDir());
    ADD_FAILURE() << "a missing tool was found";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("cannot find ferry-no-such-tool"), std::string::npos);
  }
}

// `down` removes what the record names: a record naming anything but the
// cluster's own run dirs and cgroups is refused.
TEST(ClusterRecord, OneNamingForeignRunDirsIsRefused) {
  TempDir dir("/var/tmp", "ferry-cluster-record-");
  EXPECT_FALSE(cluster::readState(dir.path()));
  json record = {{"dir", dir.path()},
                 {"id", "0123abcd"},
                 {"coordinator_endpoint", "tcp://127.0.0.1:1"},
                 {"coordinator_pid", 0},
                 {"run_base", "/run/ferry-cluster-0123abcd"},
                 {"cgroup_base", "/ferry-cluster-0123abcd"},
                 {"hosts", json::array()}};
  writeFileAtomic(dir.path() / "cluster.json", record.dump());
  EXPECT_TRUE(cluster::readState(dir.path()));
  record["run_base"] = "/usr";
  writeFileAtomic(dir.path() / "cluster.json", record.dump());
  try {
    cluster::readState(dir.path());
    ADD_FAILURE() << "a record naming /usr as its run dir was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
    EXPECT_NE(std::string(e.what()).find("not a cluster record"), std::string::npos) << e.what();
  }
  try {
    cluster::down(dir.path());
    ADD_FAILURE() << "down acted on a record naming /usr as its run dir";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a cluster record"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ferry::testing
