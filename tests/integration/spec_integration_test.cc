// Container spec parity with Podman's libpod, end to end on a local cluster
// through the `ferry` CLI: what a container is run with (user, groups,
// umask, workdir, volume options, tmpfs, annotations, secrets, sd_notify,
// SELinux labels) is checked from inside it, before and after a live
// migration.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "engine/engine.h"
#include "common/fs.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_host.h"

namespace ferry::testing {
namespace {

// --- user, groups, umask and working directory ---------------------------------

constexpr int kCapSysResource = 24;

// Whether `cap` is in the set named `set` ("CapEff", "CapBnd") of process
// `pid`'s /proc status.
bool hasCapability(const std::string& pid, const std::string& set, int cap) {
  std::string status = readFile("/proc/" + pid + "/status");
  auto at = status.find(set + ":");
  if (at == std::string::npos)
    throw std::runtime_error("no " + set + " in /proc/" + pid + "/status");
  return (std::stoull(status.substr(at + set.size() + 1, 20), nullptr, 16) >> cap) & 1;
}

// The containers of these tests print who they are, their umask's effect
// and where they are, every 100 ms: what `id`, `umask`, `pwd`, $HOME and a
// new file say.
class UserIdentity : public ClusterMigration {
 protected:
  void runWho(const std::string& name, const std::vector<std::string>& opts,
              const std::string& workdir) {
    std::vector<std::string> args = {"run", "--host", "hostA", "--name", name};
    args.insert(args.end(), opts.begin(), opts.end());
    for (const char* a : {"-w", "", "counter", "/bin/sh", "-c", ""}) args.push_back(a);
    args[args.size() - 5] = workdir;
    args.back() =
        "while :; do touch f; echo \"who $(id -u) $(id -g) $(id -G) $(umask) $(pwd) $HOME "
        "$(stat -c %a f)\"; sleep 0.1; done";
    CliResult r = ferry(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::vector<std::string> lines(const std::string& h, const std::string& name) {
    return workloadLines(engine(h), name, "who ");
  }

  // app (1000) is in audio (29) by /etc/group, staff (50) comes from
  // --group-add; /opt/applink -> /srv/app, and work/ under it is missing.
  static constexpr const char* kApp = "who 1000 1000 1000 29 50 0027 /srv/app/work /home/app 640";
  void runAppOnA(const std::vector<std::string>& extra) {
    std::vector<std::string> opts = {"-u", "app", "--group-add", "staff", "--umask", "027"};
    opts.insert(opts.end(), extra.begin(), extra.end());
    runWho("app", opts, "/opt/applink/work");
    waitFor([&] { return !lines("hostA", "app").empty(); }, seconds(20), "app to report");
    EXPECT_EQ(lines("hostA", "app").back(), kApp);
    struct stat st {};
    fs::path work = fs::path(host("hostA").root) / "containers/app/rootfs/srv/app/work";
    ASSERT_EQ(::stat(work.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1000u) << "the working directory was not made for app";
    EXPECT_EQ(st.st_gid, 1000u);
  }
  // The host ids the container's user namespace maps to, from its record
  // on host `h` ({0, 0}: none).
  std::pair<uint32_t, uint32_t> idRange(const std::string& h, const std::string& name) {
    json rec = json::parse(readFile(fs::path(host(h).root) / "containers" / name / "container.json"));
    if (!rec.contains("id_range")) return {0, 0};
    return {rec["id_range"]["host"].get<uint32_t>(), rec["id_range"]["size"].get<uint32_t>()};
  }
  // The real and effective uid of the container's process, as the host sees it.
  uint32_t hostUid(const std::string& h, const std::string& name) {
    auto c = on(h, name);
    if (!c || c->pid <= 0) throw std::runtime_error(name + " has no process on " + h);
    std::string status = readFile("/proc/" + std::to_string(c->pid) + "/status");
    return static_cast<uint32_t>(std::stoul(status.substr(status.find("Uid:") + 4)));
  }
};

// By default (--userns=auto) a container runs in a user namespace of its
// own: app (uid 1000) is host uid first+1000, its root is nobody on the
// host, and -- root owning the namespace -- it is checkpointed without
// CAP_SYS_RESOURCE (this machine has none to give). Its identity, umask,
// working directory and a U volume hold before and after a migration; the
// range comes along and is held on hostB; the volume's files keep their
// on-disk ids (an idmapped mount), so they mean the same on every host.
TEST_F(UserIdentity, AnotherUsersContainerInItsOwnUserNamespaceMigratesWithItsIdentity) {
  runWho("probe", {"--userns", "auto"}, "/");  // any container: a range to compare with
  waitFor([&] { return !lines("hostA", "probe").empty(); }, seconds(20), "probe to report");
  auto [probe_first, probe_size] = idRange("hostA", "probe");
  ASSERT_EQ(probe_size, 65536u);
  ASSERT_GE(probe_first, 1u << 20);
  EXPECT_EQ(hostUid("hostA", "probe"), probe_first) << "its root is not the range's first id";
  CliResult rm = ferry({"rm", "-f", "probe"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;

  // A fresh range for app (random, so not the probe's, but the same size).
  runWho("app", {"-u", "app", "--group-add", "staff", "--umask", "027", "-v", "appdata:/data:U"},
         "/opt/applink/work");
  waitFor([&] { return !lines("hostA", "app").empty(); }, seconds(20), "app to report");
  EXPECT_EQ(lines("hostA", "app").back(), kApp);
  auto [first, size] = idRange("hostA", "app");
  ASSERT_EQ(size, 65536u);
  EXPECT_EQ(hostUid("hostA", "app"), first + 1000);
  struct stat st {};
  fs::path work = fs::path(host("hostA").root) / "containers/app/rootfs/srv/app/work";
  ASSERT_EQ(::stat(work.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, first + 1000u) << "the working directory was not made for app";
  // U chowned the volume to app as the disk holds it: 1000, not first+1000.
  fs::path data = engine("hostA").volumes().path("appdata");
  ASSERT_EQ(::stat(data.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);

  CliResult m = ferry({"migrate", "app", "hostA", "hostB"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  waitFor([&] { return lines("hostB", "app").size() >= 3; }, seconds(20), "app on hostB");
  for (const auto& l : lines("hostB", "app")) EXPECT_EQ(l, kApp);
  EXPECT_EQ(idRange("hostB", "app"), std::make_pair(first, size));
  EXPECT_EQ(hostUid("hostB", "app"), first + 1000);
  EXPECT_FALSE(on("hostA", "app"));
  ASSERT_EQ(::stat(engine("hostB").volumes().path("appdata").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  // A user beyond the namespace's 65536 ids is refused, saying what to do.
  CliResult big = ferry({"run", "--host", "hostB", "--name", "big", "-u", "70000", "counter",
                         "/bin/true"});
  EXPECT_EQ(big.exit_code, 1);
  EXPECT_NE(big.err.find("outside the container's user namespace"), std::string::npos) << big.err;
  EXPECT_FALSE(on("hostB", "big"));
}

// CRIU reads a process's rlimits with prlimit(2), which for another user's
// process needs CAP_SYS_RESOURCE. An agent without it refuses the migration
// up front, saying so, and the container runs on. Runs on every machine:
// hostA's agent is restarted with the capability dropped from its bounding
// set (setpriv), whether or not this machine has it to give.
TEST_F(UserIdentity, AnotherUsersContainerIsRefusedUpFrontByAnAgentWithoutCapSysResource) {
  ::kill(host("hostA").pid, SIGTERM);
  waitFor([&] { return !processAlive(host("hostA").pid); }, seconds(20), "hostA's agent to stop");
  extra_agents_.push_back(startAgent("hostA", {}, {"setpriv", "--bounding-set", "-sys_resource"}));
  ASSERT_FALSE(hasCapability(std::to_string(extra_agents_.back().pid()), "CapEff", kCapSysResource))
      << "hostA's agent still has CAP_SYS_RESOURCE";
  runAppOnA({"--userns", "host"});
  CliResult m = ferry({"migrate", "app", "hostA", "hostB"});
  EXPECT_EQ(m.exit_code, 1) << m.out;
  EXPECT_NE(m.err.find("app runs as uid 1000 gid 1000"), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("needs CAP_SYS_RESOURCE, and this agent does not have it"),
            std::string::npos)
      << m.err;
  // Refused before anything froze: it runs on hostA, and nothing is on hostB.
  auto c = on("hostA", "app");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, ContainerStatus::kRunning);
  size_t n = lines("hostA", "app").size();
  waitFor([&] { return lines("hostA", "app").size() > n + 2; }, seconds(20), "app to go on");
  EXPECT_FALSE(on("hostB", "app"));
}

// With CAP_SYS_RESOURCE, the same container migrates and is the same user,
// groups, umask and directory on hostB. Only where this machine can give
// the agents the capability at all.
TEST_F(UserIdentity, AnotherUsersContainerMigratesWithItsIdentityWhereTheAgentHasCapSysResource) {
  for (const char* h : {"hostA", "hostB"}) {
    if (hasCapability(std::to_string(host(h).pid), "CapEff", kCapSysResource)) continue;
    if (!hasCapability("self", "CapBnd", kCapSysResource)) {
      FERRY_SKIP_CANNOT_RUN_HERE(
          "CAP_SYS_RESOURCE is not in its capability bounding set, so no agent here can hold it "
          "(AnotherUsersContainerIsRefusedUpFrontByAnAgentWithoutCapSysResource tests the other "
          "side)");
    }
    FAIL() << h << "'s agent lacks CAP_SYS_RESOURCE although this machine could give it";
  }
  runAppOnA({"--userns", "host"});
  CliResult m = ferry({"migrate", "app", "hostA", "hostB"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  waitFor([&] { return lines("hostB", "app").size() >= 3; }, seconds(20), "app on hostB");
  for (const auto& l : lines("hostB", "app")) EXPECT_EQ(l, kApp);
  EXPECT_FALSE(on("hostA", "app"));
}

// As root with supplementary groups, a umask and a symlinked, missing
// working directory: the same before and after a migration (CRIU needs no
// CAP_SYS_RESOURCE for root's processes), on any machine.
TEST_F(UserIdentity, RootWithGroupsUmaskAndASymlinkedWorkdirHoldBeforeAndAfterAMigration) {
  runWho("rootwho", {"-u", "root:root", "--group-add", "staff", "--group-add", "29", "--umask",
                     "027"},
         "/opt/applink/work2");
  const std::string want = "who 0 0 0 29 50 0027 /srv/app/work2 /root 640";
  waitFor([&] { return !lines("hostA", "rootwho").empty(); }, seconds(20), "rootwho to report");
  EXPECT_EQ(lines("hostA", "rootwho").back(), want);
  CliResult mr = ferry({"migrate", "rootwho", "hostA", "hostB"});
  ASSERT_EQ(mr.exit_code, 0) << mr.err;
  waitFor([&] { return lines("hostB", "rootwho").size() >= 3; }, seconds(20),
          "rootwho to report on hostB");
  for (const auto& l : lines("hostB", "rootwho")) EXPECT_EQ(l, want);
}

TEST_F(UserIdentity, BadUsersUmasksAndWorkdirsAreRefusedWithWhatToDo) {
  CliResult ghost = ferry({"run", "--host", "hostA", "--name", "ghost", "-u", "ghost", "counter",
                           "/bin/true"});
  EXPECT_EQ(ghost.exit_code, 1);
  EXPECT_NE(ghost.err.find("'ghost' is not in the container's /etc/passwd"), std::string::npos)
      << ghost.err;
  CliResult mask = ferry({"run", "--host", "hostA", "--name", "ghost", "--umask", "0999",
                          "counter", "/bin/true"});
  EXPECT_EQ(mask.exit_code, 1);
  EXPECT_NE(mask.err.find("octal"), std::string::npos) << mask.err;
  CliResult file = ferry({"run", "--host", "hostA", "--name", "ghost", "-w", "/opt/app/a",
                          "counter", "/bin/true"});
  EXPECT_EQ(file.exit_code, 1);
  EXPECT_NE(file.err.find("not a directory"), std::string::npos) << file.err;
  CliResult nocreate = ferry({"run", "--host", "hostA", "--name", "ghost", "-w", "/nowhere",
                              "--no-create-workdir", "counter", "/bin/true"});
  EXPECT_EQ(nocreate.exit_code, 1);
  EXPECT_NE(nocreate.err.find("creating it was not allowed"), std::string::npos) << nocreate.err;
  EXPECT_FALSE(on("hostA", "ghost"));
}

TEST_F(ClusterMigration, VolumeOptionsUChownsTheSourceAndOKeepsWritesOffIt) {
  // The O volume's source holds a file the container reads through the
  // overlay, changes, and adds to.
  Engine& a = engine("hostA");
  a.volumes().ensure("lower");
  writeFileAtomic(a.volumes().path("lower") / "seed", "from the source\n", 0666);
  // app may write there (through the overlay).
  ::chmod(a.volumes().path("lower").c_str(), 0777);
  ::chmod((a.volumes().path("lower") / "seed").c_str(), 0666);
  // runc mounts an O volume's overlay itself: not inside a user namespace.
  CliResult auto_ns = ferry({"run", "--host", "hostA", "--name", "vols", "-v", "lower:/ovl:O",
                             "counter", "/bin/true"});
  EXPECT_EQ(auto_ns.exit_code, 1);
  EXPECT_NE(auto_ns.err.find("--userns=host"), std::string::npos) << auto_ns.err;
  EXPECT_FALSE(on("hostA", "vols"));
  CliResult r = ferry({"run", "--host", "hostA", "--name", "vols", "--userns", "host", "-u", "app", "-v",
                       "owned:/owned:U,z", "-v", "lower:/ovl:O", "counter", "/bin/sh", "-c",
                       "echo \"seed $(cat /ovl/seed)\"; echo changed > /ovl/seed; "
                       "echo new > /ovl/added; touch /owned/mine; "
                       "echo \"owner $(stat -c %u:%g /owned) $(cat /ovl/seed) $(cat /ovl/added)\"; "
                       "exec sleep 1000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  waitFor([&] { return !workloadLines(a, "vols", "owner ").empty(); }, seconds(20),
          "vols to report");
  EXPECT_EQ(workloadLines(a, "vols", "seed ").at(0), "seed from the source");
  EXPECT_EQ(workloadLines(a, "vols", "owner ").at(0), "owner 1000:1000 changed new")
      << ::testing::PrintToString(workloadLines(a, "vols", ""));
  // On the host: U chowned the source; O's writes never reached its source.
  struct stat st {};
  ASSERT_EQ(::stat(a.volumes().path("owned").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(readFile(a.volumes().path("lower") / "seed"), "from the source\n");
  EXPECT_FALSE(pathExists(a.volumes().path("lower") / "added"));
  // Only mount options reach runc's spec.
  json config = json::parse(readFile(fs::path(host("hostA").root) / "containers/vols/config.json"));
  for (const auto& m : config["mounts"]) {
    for (const auto& o : m["options"]) {
      EXPECT_TRUE(o != "U" && o != "O" && o != "z" && o != "Z") << m.dump();
    }
  }
  // An O volume's writes are this container's alone: no migration.
  CliResult m = ferry({"migrate", "vols", "hostA", "hostB"});
  EXPECT_EQ(m.exit_code, 1);
  EXPECT_NE(m.err.find("overlay (O) volume"), std::string::npos) << m.err;
  EXPECT_EQ(on("hostA", "vols")->status, ContainerStatus::kRunning);
  // A bad option is refused before anything is made.
  CliResult bad = ferry({"run", "--host", "hostA", "--name", "bad", "-v", "x:/x:O,upperdir=/u",
                         "counter", "/bin/true"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("go together"), std::string::npos) << bad.err;
  EXPECT_FALSE(a.volumes().exists("x"));
}

TEST_F(ClusterMigration, TmpfsMountsResolveInsideTheContainerAndComeAlongWithTheirContent) {
  // /opt/applink -> /srv/app: the tmpfs lands at /srv/app/tmp, inside.
  CliResult r = ferry({"run", "--host", "hostA", "--name", "tmp", "--tmpfs",
                       "/cache:size=1m,mode=1777", "--tmpfs", "/opt/applink/tmp", "counter",
                       "/bin/sh", "-c",
                       "echo kept > /cache/x; while :; do echo \"tmp $(grep -o '/cache tmpfs' /proc/mounts) "
                       "$(grep -o '/srv/app/tmp tmpfs' /proc/mounts) $(cat /cache/x)\"; "
                       "sleep 0.1; done"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = [&](const std::string& h) { return workloadLines(engine(h), "tmp", "tmp "); };
  waitFor([&] { return !lines("hostA").empty(); }, seconds(20), "tmp to report");
  std::string first = lines("hostA").back();
  EXPECT_EQ(first, "tmp /cache tmpfs /srv/app/tmp tmpfs kept");
  json config = json::parse(readFile(fs::path(host("hostA").root) / "containers/tmp/config.json"));
  bool cache = false;
  for (const auto& m : config["mounts"]) {
    if (m["destination"] == "/cache") cache = m["options"] == json({"size=1m", "mode=1777"});
  }
  EXPECT_TRUE(cache) << config["mounts"].dump();
  // The tmpfs and what it held come along (CRIU carries tmpfs content).
  CliResult m = ferry({"migrate", "tmp", "hostA", "hostB"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  waitFor([&] { return lines("hostB").size() >= 3; }, seconds(20), "tmp to report on hostB");
  for (const auto& l : lines("hostB")) EXPECT_EQ(l, first);
  // A destination that is a file in the image is refused, nothing made.
  CliResult bad = ferry({"run", "--host", "hostA", "--name", "badtmp", "--tmpfs", "/opt/app/a",
                         "counter", "/bin/true"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("not a directory"), std::string::npos) << bad.err;
  EXPECT_FALSE(on("hostA", "badtmp"));
}

TEST_F(ClusterMigration, AnnotationsAndTheStopSignalAreRecordedAndStopUsesTheSignal) {
  CliResult r = ferry({"run", "--host", "hostA", "--name", "sig", "--annotation", "team=core",
                       "--stop-signal", "SIGINT", "counter", "/bin/sh", "-c",
                       "trap 'echo got INT; exit 0' INT; echo ready; while :; do sleep 0.1; done"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  waitFor([&] { return !workloadLines(engine("hostA"), "sig", "ready").empty(); }, seconds(20),
          "sig to start");
  json a = json::parse(readFile(fs::path(host("hostA").root) / "containers/sig/config.json"))["annotations"];
  EXPECT_EQ(a["team"], "core");
  EXPECT_EQ(a["io.container.manager"], "ferry");
  EXPECT_EQ(a["io.ferry.stop-signal"], "2");
  EXPECT_TRUE(a.contains("io.ferry.created"));
  // `ferry stop` sends SIGINT, which the container handles and exits 0 on.
  CliResult stop = ferry({"stop", "sig"});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_FALSE(workloadLines(engine("hostA"), "sig", "got INT").empty());
  EXPECT_EQ(on("hostA", "sig")->exit_code, 0);
  CliResult bad = ferry({"run", "--host", "hostA", "--name", "bad", "--stop-signal", "SIGNOPE",
                         "counter", "/bin/true"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("invalid stop signal"), std::string::npos) << bad.err;
}

// --- secrets, sd_notify and SELinux labels ------------------------------------------

class SpecParity : public ClusterMigration {
 protected:
  // What `ferry ps --json` says of one container ({} when it lists none).
  json psEntry(const std::string& name) {
    CliResult r = ferry({"--json", "ps"});
    if (r.exit_code != 0) return json::object();
    for (const auto& c : json::parse(r.out)) {
      if (c["name"] == name) return c;
    }
    return json::object();
  }
};

TEST_F(SpecParity, SecretsReachTheContainerAsEnvironmentNeverLogsAndGateTheMigration) {
  const std::string value = "s3cr3t-" + std::to_string(::getpid());
  fs::path file = fs::path(dir_) / "db-secret";
  writeFileAtomic(file, value, 0600);
  CliResult c = ferry({"secret", "create", "db", file.string(), "--host", "hostA"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.out.find(value), std::string::npos);
  // Stored root-only on the host.
  struct stat st {};
  ASSERT_EQ(::stat((fs::path(host("hostA").root) / "secrets/db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  CliResult r = ferry({"run", "--host", "hostA", "--name", "sec", "--secret", "db,type=env,target=DB_PASS",
                       "counter", "/bin/sh", "-c",
                       "i=0; while :; do i=$((i+1)); echo \"sec $i $DB_PASS\"; sleep 0.1; done"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = [&](const std::string& h) { return workloadLines(engine(h), "sec", "sec "); };
  waitFor([&] { return !lines("hostA").empty(); }, seconds(20), "sec to print");
  EXPECT_NE(lines("hostA").back().find(" " + value), std::string::npos) << lines("hostA").back();
  // The record names the secret; only runc's config.json (0600) holds it.
  EXPECT_EQ(readFile(fs::path(host("hostA").root) / "containers/sec/container.json").find(value),
            std::string::npos);
  CliResult ls = ferry({"--json", "secret", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  json all = json::parse(ls.out);
  ASSERT_EQ(all.size(), 1u) << ls.out;
  EXPECT_EQ(all[0]["name"], "db");
  EXPECT_EQ(all[0]["host"], "hostA");
  EXPECT_EQ(all[0]["bytes"], value.size());
  EXPECT_EQ(all[0]["used_by"], json({"sec"}));

  // hostB lacks it: refused before anything freezes; sec runs on.
  CliResult refused = ferry({"migrate", "sec", "hostA", "hostB"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("ferry secret create"), std::string::npos) << refused.err;
  EXPECT_EQ(on("hostA", "sec")->status, ContainerStatus::kRunning);
  EXPECT_FALSE(on("hostB", "sec"));

  // Given to hostB, the migration goes; the process keeps the value it had.
  const std::string other = "other-" + value;
  writeFileAtomic(file, other, 0600);
  CliResult c2 = ferry({"secret", "create", "db", file.string(), "--host", "hostB"});
  ASSERT_EQ(c2.exit_code, 0) << c2.err;
  size_t before = lines("hostA").size();
  CliResult m = ferry({"migrate", "sec", "hostA", "hostB"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  waitFor([&] { return lines("hostB").size() > before + 3; }, seconds(20), "sec to print on hostB");
  EXPECT_NE(lines("hostB").back().find(" " + value), std::string::npos) << lines("hostB").back();
  // A secret in use stays; one no longer used goes.
  CliResult busy = ferry({"secret", "rm", "db", "--host", "hostB"});
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_NE(busy.err.find("given to sec"), std::string::npos) << busy.err;
  CliResult gone = ferry({"secret", "rm", "db", "--host", "hostA"});
  EXPECT_EQ(gone.exit_code, 0) << gone.err;
  EXPECT_FALSE(pathExists(fs::path(host("hostA").root) / "secrets/db"));

  // Never in any log of the cluster.
  for (const auto& e : fs::directory_iterator(fs::path(dir_) / "logs")) {
    EXPECT_EQ(readFile(e.path()).find(value), std::string::npos) << e.path();
  }
  // Clear refusals: a mount secret (not built), a secret the host lacks.
  CliResult mount = ferry({"run", "--host", "hostA", "--name", "s2", "--secret", "db", "counter", "/bin/true"});
  EXPECT_EQ(mount.exit_code, 1);
  EXPECT_NE(mount.err.find("type=env"), std::string::npos) << mount.err;
  CliResult missing = ferry({"run", "--host", "hostA", "--name", "s3", "--secret", "nope,type=env",
                             "counter", "/bin/true"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("secret 'nope' is not in hostA's secrets store"), std::string::npos)
      << missing.err;
  EXPECT_FALSE(on("hostA", "s3"));
}

TEST_F(SpecParity, SdNotifyContainerRunAnswersWhenReadyAndTheSocketFollowsAMigration) {
  auto start = std::chrono::steady_clock::now();
  CliResult r = ferry({"run", "--host", "hostA", "--name", "sd", "--sdnotify=container", "counter",
                       "/bin/sh", "-c",
                       "echo \"sock $NOTIFY_SOCKET\"; if touch /run/notify/x 2>/dev/null; then "
                       "echo 'notify dir writable'; else echo 'notify dir read-only'; fi; "
                       "sleep 1; sd-notify STATUS=warming; sleep 1; "
                       "sd-notify READY=1 STATUS=tick-0; i=0; while :; do i=$((i+1)); "
                       "sd-notify STATUS=tick-$i; sleep 0.2; done"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // `run` answered only once READY=1 came, two seconds in.
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(1900));
  EXPECT_NE(r.out.find("ready"), std::string::npos) << r.out;
  EXPECT_FALSE(workloadLines(engine("hostA"), "sd", "sock /run/notify/notify.sock").empty());
  // The container can send to its socket but change nothing beside it.
  EXPECT_FALSE(workloadLines(engine("hostA"), "sd", "notify dir read-only").empty());
  auto tick = [&](const std::string& want_host) -> int {
    json c = psEntry("sd");
    if (c.empty() || c["host"] != want_host || !c["ready"].get<bool>()) return -1;
    std::string st = c["notify_status"];
    return st.rfind("tick-", 0) == 0 ? std::stoi(st.substr(5)) : -1;
  };
  waitFor([&] { return tick("hostA") > 2; }, seconds(20), "sd's status ticks to show in ps");
  CliResult m = ferry({"migrate", "sd", "hostA", "hostB"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  int at_b = -1;
  waitFor([&] { return (at_b = tick("hostB")) >= 0; }, seconds(20), "sd to show as ready on hostB");
  // hostB's agent hears it: the ticks go on there.
  waitFor([&] { return tick("hostB") > at_b + 3; }, seconds(20), "sd's ticks to go on on hostB");

  // A container that ends before READY=1: `run` fails and says so.
  CliResult early = ferry({"run", "--host", "hostA", "--name", "sd2", "--sdnotify", "container",
                           "counter", "/bin/sh", "-c", "exit 3"});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_NE(early.err.find("never said READY=1"), std::string::npos) << early.err;
  CliResult bad = ferry({"run", "--host", "hostA", "--name", "sd3", "--sdnotify", "sometimes",
                         "counter", "/bin/true"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("expected container, conmon or ignore"), std::string::npos) << bad.err;
}

// SELinux is off on the machines this runs on: neither label, whatever was
// asked, and z/Z relabel nothing (the labels themselves: selinux_label_test).
TEST_F(SpecParity, SelinuxLabelsAreNeitherWhereSelinuxIsOff) {
  ASSERT_FALSE(pathExists("/sys/fs/selinux/enforce")) << "this test expects SELinux off";
  CliResult r = ferry({"run", "--host", "hostA", "--name", "lbl", "--security-opt", "label=type:spc_t",
                       "-v", "lv:/data:Z", "counter", "/bin/sh", "-c", "while :; do sleep 1; done"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json config = json::parse(readFile(fs::path(host("hostA").root) / "containers/lbl/config.json"));
  EXPECT_FALSE(config["process"].contains("selinuxLabel")) << config["process"].dump();
  EXPECT_FALSE(config["linux"].contains("mountLabel"));
  EXPECT_NE(readFile(fs::path(dir_) / "logs/hostA.log").find("Z relabels nothing: SELinux is disabled"),
            std::string::npos);
  CliResult m = ferry({"migrate", "lbl", "hostA", "hostB"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  json after = json::parse(readFile(fs::path(host("hostB").root) / "containers/lbl/config.json"));
  EXPECT_FALSE(after["process"].contains("selinuxLabel"));
  EXPECT_FALSE(after["linux"].contains("mountLabel"));
  // Options outside label= and bad label values are refused with what is accepted.
  CliResult other = ferry({"run", "--host", "hostA", "--name", "l2", "--security-opt", "seccomp=unconfined",
                           "counter", "/bin/true"});
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("only label="), std::string::npos) << other.err;
  CliResult bad = ferry({"run", "--host", "hostA", "--name", "l3", "--security-opt", "label=typo:x",
                         "counter", "/bin/true"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("label=disable"), std::string::npos) << bad.err;
  EXPECT_FALSE(on("hostA", "l3"));
}

}  // namespace
}  // namespace ferry::testing
