// Checkpoint bundles end to end: export on hostA, import on hostB, with real
// runc/CRIU; compatibility refusals; hostile bundles.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"
#include "test_host.h"

namespace ferry::testing {
namespace {

using std::chrono::seconds;
using BundleIntegration = TwoHostTest;

fs::path rootfsOf(Engine& e, const std::string& name) {
  return e.config().root / "containers" / name / "rootfs";
}

struct stat statOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st;
}

std::string xattrOf(const fs::path& p, const char* name) {
  char buf[256];
  ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

// Every rootfs-diff case, made through the container's mounted rootfs while
// it runs (the overlay records them in its upperdir as any write would).
void changeRootfs(const fs::path& r) {
  makeDirs(r / "srv");
  writeFileAtomic(r / "srv/new.txt", "added\n");                               // A
  ASSERT_EQ(::lsetxattr((r / "srv/new.txt").c_str(), "user.note", "kept", 4, 0), 0);
  writeFileAtomic(r / "etc/hostname", "changed\n");                             // C
  fs::remove(r / "bin/vi");                                                     // D file
  fs::remove(r / "root");                                                       // D dir
  fs::remove_all(r / "opt/app");                                                // opaque dir
  makeDirs(r / "opt/app");
  writeFileAtomic(r / "opt/app/c", "only me\n");
  writeFileAtomic(r / "srv/h1", "linked\n");
  ASSERT_EQ(::link((r / "srv/h1").c_str(), (r / "srv/h2").c_str()), 0);        // hardlink
  fs::create_symlink("new.txt", r / "srv/link");                                // symlink
  {
    std::ofstream f(r / "srv/sparse", std::ios::binary);                        // sparse
    f.seekp(5 << 20);
    f << "middle";
    f.seekp((10 << 20) - 1);
    f << 'e';
  }
  ASSERT_EQ(::mknod((r / "srv/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);  // device
}

void expectRootfsChanges(const fs::path& r) {
  EXPECT_EQ(readFile(r / "srv/new.txt"), "added\n");
  EXPECT_EQ(xattrOf(r / "srv/new.txt", "user.note"), "kept");
  EXPECT_EQ(readFile(r / "etc/hostname"), "changed\n");
  EXPECT_FALSE(pathExists(r / "bin/vi")) << "deleted file came back";
  EXPECT_TRUE(pathExists(r / "bin/ls")) << "the image itself is gone";
  EXPECT_FALSE(pathExists(r / "root")) << "deleted directory came back";
  EXPECT_FALSE(pathExists(r / "opt/app/a")) << "opaque directory shows the image's files";
  EXPECT_EQ(readFile(r / "opt/app/c"), "only me\n");
  EXPECT_EQ(statOf(r / "srv/h1").st_ino, statOf(r / "srv/h2").st_ino) << "hardlink split";
  EXPECT_EQ(fs::read_symlink(r / "srv/link"), "new.txt");
  struct stat sp = statOf(r / "srv/sparse");
  EXPECT_EQ(sp.st_size, 10 << 20);
  EXPECT_LT(sp.st_blocks * 512, 1 << 20) << "sparse file was filled in";
  std::string sparse = readFile(r / "srv/sparse");
  EXPECT_EQ(sparse.substr(5 << 20, 6), "middle");
  EXPECT_EQ(sparse[0], '\0');
  struct stat dev = statOf(r / "srv/null");
  EXPECT_TRUE(S_ISCHR(dev.st_mode));
  EXPECT_EQ(dev.st_rdev, makedev(1, 3));
}

std::string exportBundle(Engine& e, const std::string& name, const CheckpointOptions& o = {}) {
  StringSink sink;
  CheckpointResult r = e.exportCheckpoint(name, sink, o, {.level = 3, .threads = 2});
  EXPECT_EQ(r.bundle_bytes, sink.data.size());
  return sink.data;
}

TEST_F(BundleIntegration, ExportImportKeepsEveryRootfsChangeMemoryAndVolumes) {
  runCounterOnA("web", 5);
  fs::path vol = a().volumes().path("data");
  std::mt19937_64 rng(3);
  std::string blob(1 << 20, '\0');
  for (auto& c : blob) c = static_cast<char>(rng());
  writeFileAtomic(vol / "blob", blob);
  changeRootfs(rootfsOf(a(), "web"));

  std::string bundle = exportBundle(a(), "web");
  unsigned long last = counterValues(a(), "web").back();
  EXPECT_EQ(a().inspect("web").status, ContainerStatus::kCheckpointed);

  StringSource src(bundle);
  RestoreResult r = b().importCheckpoint(src, {});
  EXPECT_EQ(r.container.status, ContainerStatus::kRunning);
  waitFor([&] { return valuesAfter(counterValues(b(), "web"), last).size() >= 3; }, seconds(20),
          "web to count on hostB");
  EXPECT_EQ(valuesAfter(counterValues(b(), "web"), last).front(), last + 1) << "in-memory state did not survive";
  expectRootfsChanges(rootfsOf(b(), "web"));
  fs::path vol_b = b().volumes().path("data");
  EXPECT_EQ(readFile(vol_b / "blob"), blob) << "volume differs";
  EXPECT_EQ(readFile(vol_b / "marker"), readFile(vol / "marker"));
  EXPECT_TRUE(fs::is_empty(b().config().root / "staging")) << "staging stayed behind";
}

// A receiver that takes the first bytes of a stream and then holds it until
// the test lets go: a slow link, the case the container's own lock is for.
class HeldSink : public ByteSink {
 public:
  void write(std::string_view d) override {
    std::unique_lock<std::mutex> l(mu_);
    writing_ = true;
    changed_.notify_all();
    changed_.wait(l, [&] { return released_; });
    data.append(d);
  }
  void waitUntilWriting() {
    std::unique_lock<std::mutex> l(mu_);
    ASSERT_TRUE(changed_.wait_for(l, seconds(60), [&] { return writing_; })) << "the stream never began";
  }
  void release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    changed_.notify_all();
  }
  std::string data;

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool writing_ = false, released_ = false;
};

// Work on one container never waits for another's checkpoint: while one's
// stream is held mid-way (its lock taken), another on the same host
// is created, paused, resumed, checkpointed and stopped. With one lock per
// host each of these waited for the whole stream.
TEST_F(BundleIntegration, OtherContainersAreWorkedOnWhileOnesStreamIsHeld) {
  runCounterOnA("slow", 3);
  HeldSink held;
  std::future<CheckpointResult> exporting;
  std::future<ContainerStatus> others;
  // Let go on every way out (a failed assertion too), before the futures'
  // destructors wait for their threads: a failure fails, never hangs.
  struct LetGo {
    HeldSink& sink;
    ~LetGo() { sink.release(); }
  } let_go{held};
  exporting = std::async(std::launch::async, [&] {
    return a().exportCheckpoint("slow", held, {}, {.level = 0, .threads = 1});
  });
  held.waitUntilWriting();

  others = std::async(std::launch::async, [&] {
    a().volumes().ensure("other-data");
    a().run(counterSpec("other", "other-data"));
    a().pause("other");
    a().resume("other");
    waitFor([&] { return !counterValues(a(), "other").empty(); }, seconds(20), "other to count");
    StringSink copy;
    a().exportCheckpoint("other", copy, {.leave_running = true}, {.level = 0, .threads = 1});
    return a().stop("other", seconds(5)).status;
  });
  // Generous: this is not a speed test. Waiting behind the held stream would
  // never end (the stream is only released below), so it would fail here.
  ASSERT_EQ(others.wait_for(seconds(120)), std::future_status::ready)
      << "work on another container waited for the held checkpoint";
  EXPECT_EQ(others.get(), ContainerStatus::kExited);

  held.release();
  CheckpointResult r = exporting.get();
  EXPECT_EQ(r.bundle_bytes, held.data.size());
  unsigned long last = counterValues(a(), "slow").back();
  StringSource src(held.data);
  b().importCheckpoint(src, {});
  waitFor([&] { return valuesAfter(counterValues(b(), "slow"), last).size() >= 2; }, seconds(20),
          "slow to go on counting on hostB");
  EXPECT_EQ(valuesAfter(counterValues(b(), "slow"), last).front(), last + 1);
}

TEST_F(BundleIntegration, ImportUnderANewNameWhileTheSourceKeepsRunning) {
  runCounterOnA("src", 3);
  std::string bundle = exportBundle(a(), "src", {.leave_running = true});
  EXPECT_EQ(a().inspect("src").status, ContainerStatus::kRunning);
  StringSource src(bundle);
  b().importCheckpoint(src, {.name = "copy"});
  waitFor([&] { return counterValues(b(), "copy").size() >= 2; }, seconds(20), "copy to count");
  EXPECT_EQ(b().inspect("copy").record.spec.name, "copy");
  EXPECT_EQ(a().inspect("src").status, ContainerStatus::kRunning);
}

TEST_F(BundleIntegration, ARestoringHostThatDiffersIsRefusedUnlessIgnoredOnPurpose) {
  runCounterOnA("m", 2);
  fs::path dir = checkpointDir("meta");
  a().checkpoint("m", dir, {});
  auto meta = nlohmann::json::parse(readFile(dir / "checkpoint.json"));
  meta["host"]["arch"] = "aarch64";
  meta["host"]["cpu_flags"].push_back("ferry_test_only_flag");
  writeFileAtomic(dir / "checkpoint.json", meta.dump());
  resealManifest(dir);
  try {
    b().restore(dir, {});
    FAIL() << "restored across architectures";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.category(), ErrorCategory::kIncompatible);
    EXPECT_NE(msg.find("arch: hostA is aarch64"), std::string::npos) << msg;
    EXPECT_NE(msg.find("hostB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ferry_test_only_flag"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--ignore"), std::string::npos) << msg;
  }
  EXPECT_TRUE(b().list().empty());
  EXPECT_FALSE(b().volumes().exists("data"));

  RestoreResult r = b().restore(dir, {.ignore = {"arch", "cpu-flags"}});
  EXPECT_EQ(r.container.status, ContainerStatus::kRunning);
  bool ignored = false;
  for (const auto& w : r.warnings) ignored |= w.ignored && w.check == "arch";
  EXPECT_TRUE(ignored) << "the override is not reported";
}

TEST_F(BundleIntegration, AVolumeWithDataOfTheSameNameIsRefusedUnlessReplaced) {
  runCounterOnA("v", 2);
  std::string bundle = exportBundle(a(), "v");
  writeFileAtomic(b().volumes().ensure("data") / "precious", "hostB's own\n");
  StringSource src(bundle);
  try {
    b().importCheckpoint(src, {});
    FAIL() << "a volume of the same name was overwritten";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("volume 'data' already exists here"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(readFile(b().volumes().path("data") / "precious"), "hostB's own\n");
  // Not even on purpose while a container here uses it.
  b().run(counterSpec("user", "data"));
  StringSource busy(bundle);
  try {
    b().importCheckpoint(busy, {.replace_volumes = true});
    FAIL() << "a volume in use was replaced";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("in use by container 'user'"), std::string::npos) << e.what();
  }
  b().remove("user", true);
  StringSource again(bundle);
  b().importCheckpoint(again, {.replace_volumes = true});
  EXPECT_FALSE(pathExists(b().volumes().path("data") / "precious"));
  EXPECT_TRUE(pathExists(b().volumes().path("data") / "marker"));
}

// Fault: the target's disk has less room than the bundle (a small tmpfs
// over its staging). Promise: refused before the disk fills, saying so and
// what to do; nothing left on the target; the source keeps running.
TEST_F(BundleIntegration, ABundleLargerThanTheTargetsFreeDiskIsRefusedAndLeavesNothing) {
  runCounterOnA("big", 3);
  std::mt19937_64 rng(7);
  std::string blob(16 << 20, '\0');
  for (auto& c : blob) c = static_cast<char>(rng());
  writeFileAtomic(rootfsOf(a(), "big") / "blob", blob);
  std::string bundle = exportBundle(a(), "big", {.leave_running = true});
  ASSERT_GT(bundle.size(), size_t{16} << 20);

  fs::path staging = b().config().root / "staging";
  makeDirs(staging);
  // 260 MiB free, less the 256 MiB margin: a 4 MiB budget.
  ASSERT_EQ(::mount("tmpfs", staging.c_str(), "tmpfs", 0, "size=260m"), 0) << std::strerror(errno);
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{staging};
  StringSource src(bundle);
  try {
    b().importCheckpoint(src, {});
    FAIL() << "a bundle larger than the free disk was imported";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent) << msg;
    EXPECT_NE(msg.find("what hostB has free for it"), std::string::npos) << msg;
    EXPECT_NE(msg.find("free disk there and try again"), std::string::npos) << msg;
  }
  EXPECT_TRUE(b().list().empty());
  waitFor([&] { return fs::is_empty(staging); }, seconds(10), "hostB's staging to be empty");
  EXPECT_EQ(a().inspect("big").status, ContainerStatus::kRunning);
}

TEST_F(BundleIntegration, InspectVerifiesAndDescribesABundle) {
  runCounterOnA("ins", 2);
  changeRootfs(rootfsOf(a(), "ins"));
  fs::path file = dirs_->state / "ins.ferry";
  writeFileAtomic(file, exportBundle(a(), "ins"));
  LocalCommandRunner r;
  ProcessResult p = r.run({FERRY_INSPECT_BIN, "--json", file.string()}, {});
  ASSERT_TRUE(p.ok()) << p.err;
  auto j = nlohmann::json::parse(p.out);
  EXPECT_EQ(j["metadata"]["container"]["spec"]["name"], "ins");
  EXPECT_EQ(j["metadata"]["host"]["host_name"], "hostA");
  EXPECT_FALSE(j["info"]["criu_dump_stats"].is_null());
  std::set<std::string> marks;
  for (const auto& c : j["changes"]) marks.insert(c["mark"].get<std::string>() + " " + c["path"].get<std::string>());
  EXPECT_TRUE(marks.count("A srv/new.txt")) << p.out;
  EXPECT_TRUE(marks.count("C etc/hostname")) << p.out;
  EXPECT_TRUE(marks.count("D bin/vi")) << p.out;

  p = r.run({FERRY_INSPECT_BIN, "--files", "--stats", file.string()}, {});
  ASSERT_TRUE(p.ok()) << p.err;
  EXPECT_NE(p.out.find("Container:  ins"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("  D /bin/vi"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("frozen time"), std::string::npos) << p.out;

  std::string bytes = readFile(file);
  bytes[bytes.size() / 2] ^= 0x01;
  writeFileAtomic(file, bytes);
  p = r.run({FERRY_INSPECT_BIN, file.string()}, {});
  EXPECT_EQ(p.exit_code, 1);
  EXPECT_NE(p.err.find("bad bundle"), std::string::npos) << p.err;
}

// A checkpoint record naming host paths: an O volume's upperdir/workdir
// would have the restoring engine (root) make, chown and chmod a directory
// of the bundle's choice and mount it writable into the container.
// Promise: refused, that directory untouched, nothing left on hostB.
TEST_F(BundleIntegration, ARecordNamingHostPathsIsRefusedAndTouchesNothing) {
  runCounterOnA("o", 2);
  // The volume's root, restored on hostB, is what the upper layer would be
  // made like: make it differ from the victim's.
  fs::path vol = a().volumes().path("data");
  ASSERT_EQ(::chown(vol.c_str(), 12345, 12345), 0);
  ASSERT_EQ(::chmod(vol.c_str(), 0777), 0);
  fs::path dir = checkpointDir("o");
  a().checkpoint("o", dir, {});
  fs::path victim = dirs_->state / "host-dir";
  makeDirs(victim);
  ASSERT_EQ(::chown(victim.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(victim.c_str(), 0755), 0);
  fs::path work = dirs_->state / "host-work";
  auto meta = nlohmann::json::parse(readFile(dir / "checkpoint.json"));
  auto& v = meta["container"]["spec"]["volumes"][0];
  v["overlay"] = true;
  v["upperdir"] = victim.string();
  v["workdir"] = work.string();
  writeFileAtomic(dir / "checkpoint.json", meta.dump());
  resealManifest(dir);
  for (bool as_bundle : {false, true}) {
    try {
      if (as_bundle) {
        StringSource src(bundleFromDir(dir, {}));
        b().importCheckpoint(src, {});
      } else {
        b().restore(dir, {});
      }
      ADD_FAILURE() << "a checkpoint with an O volume was restored";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
      EXPECT_NE(std::string(e.what()).find("overlay (O) volume"), std::string::npos) << e.what();
    }
    struct stat st = statOf(victim);
    EXPECT_EQ(st.st_uid, 0u) << "the host directory was chowned";
    EXPECT_EQ(st.st_mode & 07777, 0755u) << "the host directory was chmodded";
    EXPECT_TRUE(fs::is_empty(victim));
    EXPECT_FALSE(pathExists(work)) << "the workdir was made on the host";
    EXPECT_TRUE(b().list().empty());
    EXPECT_FALSE(b().volumes().exists("data"));
    EXPECT_FALSE(anyMountBelow(b().config().root));
    EXPECT_TRUE(!pathExists(b().config().root / "staging") ||
                fs::is_empty(b().config().root / "staging"));
  }
}

// A container's user namespace range travels with it and is reserved on the
// target: a target where another container holds that range refuses the
// restore (its files carry those ids), says which container, and changes
// nothing. The collision is made by hand -- ranges are random, so two hosts
// seldom pick the same one by themselves.
TEST_F(BundleIntegration, ARangeOfHostIdsAnotherContainerHoldsOnTheTargetIsRefused) {
  runCounterOnA("u", 2);
  ContainerSpec holder = counterSpec("holder", "");
  holder.volumes.clear();
  holder.args = {"/bin/sh", "-c", "exec sleep 1000"};
  b().run(holder);
  auto rangeOf = [](Engine& e, const std::string& name) {
    return nlohmann::json::parse(
        readFile(e.config().root / "containers" / name / "container.json"))["id_range"];
  };
  nlohmann::json held = rangeOf(b(), "holder");
  ASSERT_EQ(held["size"], 65536) << "holder runs without a user namespace";
  fs::path dir = checkpointDir("u");
  a().checkpoint("u", dir, {});
  ASSERT_NE(nlohmann::json::parse(readFile(dir / "checkpoint.json"))["container"]["id_range"], held);
  auto meta = nlohmann::json::parse(readFile(dir / "checkpoint.json"));
  meta["container"]["id_range"] = held;
  writeFileAtomic(dir / "checkpoint.json", meta.dump());
  resealManifest(dir);
  try {
    b().restore(dir, {});
    ADD_FAILURE() << "restored over holder's range of host ids";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIncompatible) << e.what();
    EXPECT_NE(std::string(e.what()).find("which container 'holder' on"), std::string::npos)
        << e.what();
  }
  std::vector<std::string> names;
  for (const auto& c : b().list()) names.push_back(c.name());
  EXPECT_EQ(names, std::vector<std::string>{"holder"});
  EXPECT_EQ(b().inspect("holder").status, ContainerStatus::kRunning);
  EXPECT_FALSE(b().volumes().exists("data"));
  EXPECT_FALSE(pathExists(b().config().root / "containers" / "u"));
}

// Hostile bundles: valid checksums around archives that try to escape.
// Promise: refused, nothing written outside, nothing left on hostB.
TEST_F(BundleIntegration, HostileArchivesAreRefusedAndLeaveNothing) {
  runCounterOnA("h", 2);
  fs::path dir = checkpointDir("h");
  a().checkpoint("h", dir, {});
  fs::path outside = dirs_->state / "outside";
  makeDirs(outside);
  std::string out = outside.string();
  std::map<std::string, std::vector<TarMember>> attacks = {
      {"path traversal", {{"../../../../outside/evil", 'f', "x"}}},
      {"absolute path", {{out + "/evil", 'f', "x"}}},
      {"symlink then file through it", {{"esc", 'l', out}, {"esc/evil", 'f', "x"}}},
      {"hardlink out of the tree", {{"hl", 'h', "../../../../etc/passwd"}}},
      {"hardlink through a symlink", {{"s", 'l', out}, {"hl", 'h', "s/x"}}},
  };
  for (const auto& [what, members] : attacks) {
    for (const char* entry : {"rootfs/rootfs.tar", "volume/data"}) {
      std::string bundle = bundleFromDir(dir, {{entry, tarOf(members)}});
      StringSource src(bundle);
      try {
        b().importCheckpoint(src, {});
        ADD_FAILURE() << what << " in " << entry << " was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << what << ": " << e.what();
        EXPECT_NE(std::string(e.what()).find("archive member"), std::string::npos) << e.what();
      }
      EXPECT_TRUE(fs::is_empty(outside)) << what << " in " << entry << " wrote outside";
      EXPECT_TRUE(b().list().empty()) << what;
      EXPECT_FALSE(b().volumes().exists("data")) << what;
      EXPECT_TRUE(fs::is_empty(b().config().root / "staging")) << what;
      EXPECT_FALSE(anyMountBelow(b().config().root)) << what;
    }
  }
  // Two archives: the rootfs diff plants a symlink where the volume is
  // mounted; the volume's files must still land in the volume, not outside.
  std::string bundle = bundleFromDir(dir, {{"rootfs/rootfs.tar", tarOf({{"data", 'l', out}})}});
  StringSource src(bundle);
  try {
    b().importCheckpoint(src, {});
  } catch (const Error&) {
    // Refusing is fine too; writing outside is not.
  }
  EXPECT_TRUE(fs::is_empty(outside)) << "the two-archive symlink attack wrote outside";
}

}  // namespace
}  // namespace ferry::testing
