#include "test_host.h"

#include <sys/mount.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <archive.h>
#include <archive_entry.h>
#include <xxhash.h>

#include <cstdlib>
#include <cstring>

#include "engine/store/overlay.h"

namespace ferry::testing {

std::string missingPrerequisite() {
  if (::geteuid() != 0) return "needs root (runc, overlayfs mounts, CRIU)";
  LocalCommandRunner r;
  try {
    ProcessResult p = r.run({defaultCriuPath(), "check"}, {});
    if (!p.ok()) return "'" + defaultCriuPath() + " check' fails: run tools/install-deps.sh";
  } catch (const std::exception& e) {
    return std::string("no CRIU: ") + e.what();
  }
  return "";
}

TestDirs::TestDirs() {
  std::string tag = std::to_string(::getpid()) + "-" +
                    std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  state = fs::path("/var/tmp") / ("ferry-test-" + tag);
  run = fs::path("/run") / ("ferry-test-" + tag);
  // Searchable by others: a container in a user namespace resolves its
  // rootfs below the state root as nobody on the host.
  makeDirs(state, 0711);
  makeDirs(run, 0700);
}

TestDirs::~TestDirs() {
  for (const auto& dir : {state, run}) {
    // Last resort for anything a failed test left mounted.
    while (anyMountBelow(dir)) {
      std::ifstream in("/proc/self/mountinfo");
      std::string line, deepest;
      while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string a, b, c, d, mp;
        f >> a >> b >> c >> d >> mp;
        if (mp.rfind(dir.string(), 0) == 0 && mp.size() > deepest.size()) deepest = mp;
      }
      if (deepest.empty() || ::umount2(deepest.c_str(), MNT_DETACH) != 0) break;
    }
    try {
      removeTree(dir);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "test cleanup: %s\n", e.what());
    }
  }
}

TestHost::TestHost(const std::string& name, const fs::path& state_parent,
                   const fs::path& run_parent) {
  EngineConfig cfg;
  cfg.host_name = name;
  cfg.root = state_parent / name;
  cfg.run_dir = run_parent / name;
  // Unique per test run, so parallel runs and leftovers never collide.
  cfg.cgroup_parent = "/ferry-test/" + run_parent.filename().string() + "/" + name;
  engine_ = std::make_unique<Engine>(cfg, runner_);
}

TestHost::~TestHost() {
  try {
    for (const auto& c : engine_->list()) engine_->remove(c.name(), true);
    for (const auto& v : engine_->volumes().list()) engine_->volumes().remove(v);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test cleanup on %s: %s\n", config().host_name.c_str(), e.what());
  }
  // The shared test cgroup parents, when this was the last user.
  for (const char* base : {"/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                           "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/freezer"}) {
    fs::path parent = fs::path(config().cgroup_parent).parent_path();
    for (fs::path p = parent.relative_path(); !p.empty(); p = p.parent_path()) {
      ::rmdir((fs::path(base) / p).c_str());
    }
  }
}

ImageRecord TestHost::importTestImage() { return engine_->images().import("counter", FERRY_TEST_IMAGE); }

void waitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
             const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("timed out after " + std::to_string(timeout.count()) +
                               " ms waiting for " + what);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<unsigned long> valuesAfter(const std::vector<unsigned long>& v, unsigned long last) {
  auto it = std::find(v.begin(), v.end(), last);
  if (it == v.end()) {
    throw std::runtime_error("the restored log lacks the source's last value " + std::to_string(last));
  }
  return {it + 1, v.end()};
}

std::vector<unsigned long> counterValues(Engine& e, const std::string& name) {
  std::vector<unsigned long> out;
  for (const auto& l : e.logs(name)) {
    if (l.text.rfind("counter ", 0) == 0) out.push_back(std::stoul(l.text.substr(8)));
  }
  return out;
}

ContainerSpec counterSpec(const std::string& name, const std::string& volume) {
  ContainerSpec s;
  s.name = name;
  s.image = "counter";
  s.args = {"/usr/local/bin/counter", "--file", "/data/counter", "--interval-ms", "100"};
  s.volumes = {{volume, "/data", false}};
  return s;
}

bool anyMountBelow(const fs::path& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + dir.string() + "/") != std::string::npos) return true;
  }
  return false;
}

bool runcHasContainers(const EngineConfig& cfg) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(runcRoot(cfg), ec)) {
    if (pathExists(e.path() / "state.json")) return true;
  }
  return false;
}

void resealManifest(const fs::path& dir) {
  using nlohmann::json;
  json m = json::parse(readFile(dir / "manifest.json"));
  for (auto& e : m["entries"]) {
    std::string bytes = readFile(dir / stagingPath(e["kind"], e["name"]));
    e["size"] = bytes.size();
    e["xxh3"] = XXH3_64bits(bytes.data(), bytes.size());
  }
  writeFileAtomic(dir / "manifest.json", m.dump(2));
}

std::string tarOf(const std::vector<TarMember>& members) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* ctx, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(ctx)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const auto& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.path.c_str());
    archive_entry_set_mtime(e, 1700000000, 0);
    if (m.type == 'f') {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_size(e, static_cast<la_int64_t>(m.data.size()));
    } else if (m.type == 'd') {
      archive_entry_set_filetype(e, AE_IFDIR);
      archive_entry_set_perm(e, 0755);
    } else if (m.type == 'l') {
      archive_entry_set_filetype(e, AE_IFLNK);
      archive_entry_set_perm(e, 0777);
      archive_entry_set_symlink(e, m.data.c_str());
    } else {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_hardlink(e, m.data.c_str());
    }
    archive_write_header(a, e);
    if (m.type == 'f') archive_write_data(a, m.data.data(), m.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

std::string tarMember(const fs::path& tar, const std::string& name) {
  archive* a = archive_read_new();
  archive_read_support_format_all(a);
  if (archive_read_open_filename(a, tar.c_str(), 1 << 16) != ARCHIVE_OK) {
    archive_read_free(a);
    throw std::runtime_error("cannot open " + tar.string());
  }
  archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string path = archive_entry_pathname(e);
    if (path == name || path == "./" + name) {
      std::string data(static_cast<size_t>(archive_entry_size(e)), '\0');
      archive_read_data(a, data.data(), data.size());
      archive_read_free(a);
      return data;
    }
  }
  archive_read_free(a);
  throw std::runtime_error(name + " is not in " + tar.string());
}

std::string bundleFromDir(const fs::path& dir, const std::map<std::string, std::string>& replace) {
  using nlohmann::json;
  StringSink sink;
  BundleWriter w(sink, {.level = 1, .threads = 1});
  json m = json::parse(readFile(dir / "manifest.json"));
  for (const auto& e : m["entries"]) {
    std::string kind = e["kind"], name = e["name"];
    auto it = replace.find(kind + "/" + name);
    w.openStream(kind, name).write(it != replace.end() ? it->second : readFile(dir / stagingPath(kind, name)));
    w.closeStream();
  }
  w.finish(m["info"]);
  return sink.data;
}


void TwoHostTest::SetUp() {
  FERRY_REQUIRE_PREREQUISITES();
  dirs_ = std::make_unique<TestDirs>();
  a_ = std::make_unique<TestHost>("hostA", dirs_->state, dirs_->run);
  b_ = std::make_unique<TestHost>("hostB", dirs_->state, dirs_->run);
  a_->importTestImage();
  b_->importTestImage();
}

void TwoHostTest::TearDown() {
  a_.reset();
  b_.reset();
  dirs_.reset();
}

void TwoHostTest::runCounterOnA(const std::string& name, unsigned long min) {
  fs::path vol = a().volumes().ensure("data");
  writeFileAtomic(vol / "marker", "volume content from before the run\n");
  a().run(counterSpec(name, "data"));
  waitFor([&] { auto v = counterValues(a(), name); return !v.empty() && v.back() >= min; },
          std::chrono::seconds(20), name + " to count to " + std::to_string(min) + " on hostA");
}

unsigned long volumeCounter(Engine& e) {
  // The counter rewrites the file in place (truncate, write): a read may
  // land in between and find it empty; the next one will not.
  for (int attempt = 0;; ++attempt) {
    std::string text = readFile(e.volumes().path("data") / "counter");
    if (!text.empty() || attempt == 50) return std::stoul(text);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::map<std::string, bool> hostsUp(proto::RpcClient& cli) {
  auto reply = cli.call([](proto::Message::Builder m) { m.setListHosts(); }, std::chrono::seconds(5));
  std::map<std::string, bool> up;
  for (auto h : reply->root<proto::Message>().getHosts()) up[h.getName().cStr()] = h.getUp();
  return up;
}

std::map<std::string, std::string> containersOn(proto::RpcClient& cli, const std::string& host) {
  auto reply = cli.call([&](proto::Message::Builder m) { m.setListContainers(host); },
                        std::chrono::seconds(5));
  std::map<std::string, std::string> out;
  for (auto c : reply->root<proto::Message>().getContainers()) out[c.getName().cStr()] = c.getStatus().cStr();
  return out;
}

}  // namespace ferry::testing
