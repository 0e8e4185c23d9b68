// Writes the seed corpus of every fuzz target (fuzz/corpus/<target>/), each
// seed a well-formed input made with the project's own writers -- the bundle
// writer, the control and stream schemas, libarchive for tars -- so that the
// fuzzers start from what real peers send:
//
//   fuzz_seeds DIR     (tools/fuzz.sh --seed runs it into fuzz/corpus)
//
// Seeds are named seed-*; files a fuzzer found and that were kept as
// regressions (crash-*, named by what they found) are never touched.
#include <archive.h>
#include <archive_entry.h>
#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/sha256.h"
#include "engine/bundle/bundle.h"
#include "engine/checkpoint/page_stream.h"
#include "fuzz/fuzz_support.h"
#include "protocol/chunk_stream.h"
#include "protocol/framing.h"
#include "protocol/rpc.h"
#include "protocol/stream.capnp.h"
#include "tests/support/string_stream.h"

namespace {

using namespace ferry;
using fuzz::appendFrame;
using Builder = proto::Message::Builder;

fs::path g_out;

void seed(const std::string& target, const std::string& name, const std::string& bytes) {
  makeDirs(g_out / target);
  writeFileAtomic(g_out / target / ("seed-" + name), bytes);
}

std::string frameBytes(const zmq::message_t& m) { return std::string(m.data<char>(), m.size()); }
std::string message(uint64_t id, const std::function<void(Builder)>& fill) {
  return frameBytes(proto::buildMessage(id, fill));
}

// --- tars ------------------------------------------------------------------

struct Member {
  std::string path;
  char type = 'f';  // f file, d dir, l symlink, h hardlink
  std::string data; // content, or the link's target
};

la_ssize_t appendTo(archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

std::string tarBytes(const std::vector<Member>& members, const char* filter = nullptr) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (filter) archive_write_add_filter_by_name(a, filter);
  // No time in the gzip header: the same seeds on every run.
  if (filter && std::string(filter) == "gzip") archive_write_set_filter_option(a, "gzip", "timestamp", nullptr);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, appendTo, nullptr);
  for (const Member& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.path.c_str());
    archive_entry_set_mtime(e, 1700000000, 0);
    switch (m.type) {
      case 'd': archive_entry_set_filetype(e, AE_IFDIR); archive_entry_set_perm(e, 0755); break;
      case 'l':
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_perm(e, 0777);
        archive_entry_set_symlink(e, m.data.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_hardlink(e, m.data.c_str());
        break;
      default:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, static_cast<la_int64_t>(m.data.size()));
    }
    archive_write_header(a, e);
    if (m.type == 'f') archive_write_data(a, m.data.data(), m.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

const std::vector<Member> kRootfs = {
    {"./", 'd', ""},          {"bin", 'd', ""},
    {"bin/sh", 'f', "#!"},    {"bin/ash", 'h', "bin/sh"},
    {"etc", 'd', ""},         {"etc/hostname", 'f', "web\n"},
    {"lib", 'l', "usr/lib"},  {"usr/lib/libc.so", 'f', "ELF"},
};

void layerSeeds() {
  const char* t = "fuzz_layer_apply";
  std::string layer = tarBytes(kRootfs);
  seed(t, "rootfs-as-files", std::string(1, '\0') + layer);
  std::vector<Member> oci = {{"etc", 'd', ""},
                             {"etc/.wh.passwd", 'f', ""},
                             {"etc/new", 'f', "added"},
                             {"rel/.wh..wh..opq", 'f', ""},
                             {".wh.abs", 'f', ""}};
  seed(t, "oci-whiteouts", std::string(1, '\1') + tarBytes(oci));
  seed(t, "overlay-whiteouts", std::string(1, '\2') + tarBytes(oci));
  seed(t, "gzip", std::string(1, '\1') + tarBytes(kRootfs, "gzip"));
  seed(t, "zstd", std::string(1, '\0') + tarBytes(kRootfs, "zstd"));
  // Through the symlinks an earlier layer left: must replace them, never follow.
  seed(t, "through-symlinks",
       std::string(1, '\1') + tarBytes({{"rel/x", 'f', "no"}, {"abs/y", 'f', "no"}}));
}

void importSeeds() {
  const char* t = "fuzz_image_import";
  seed(t, "rootfs-tar", tarBytes(kRootfs));
  seed(t, "rootfs-gzip", tarBytes(kRootfs, "gzip"));
  // An OCI image layout in a tar: one manifest, one config, one layer.
  std::string layer = tarBytes({{"etc", 'd', ""}, {"etc/os-release", 'f', "ID=fuzz\n"}});
  auto desc = [](const std::string& blob, const char* type) {
    return nlohmann::json{
        {"mediaType", type}, {"digest", "sha256:" + sha256Hex(blob)}, {"size", blob.size()}};
  };
  std::string config = nlohmann::json{{"architecture", "amd64"},
                                      {"os", "linux"},
                                      {"config", {{"Cmd", {"/bin/sh"}}, {"Env", {"PATH=/bin"}}}},
                                      {"rootfs", {{"type", "layers"}, {"diff_ids", {}}}}}
                           .dump();
  nlohmann::json layer_desc = desc(layer, "application/vnd.oci.image.layer.v1.tar");
  nlohmann::json config_desc = desc(config, "application/vnd.oci.image.config.v1+json");
  std::string manifest = nlohmann::json{{"schemaVersion", 2},
                                        {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                        {"config", config_desc},
                                        {"layers", {layer_desc}}}
                             .dump();
  nlohmann::json manifest_desc = desc(manifest, "application/vnd.oci.image.manifest.v1+json");
  std::string index = nlohmann::json{{"schemaVersion", 2}, {"manifests", {manifest_desc}}}.dump();
  auto blob = [](const std::string& b) { return "blobs/sha256/" + sha256Hex(b); };
  seed(t, "oci-layout-tar",
       tarBytes({{"oci-layout", 'f', R"({"imageLayoutVersion": "1.0.0"})"},
                 {"index.json", 'f', index},
                 {"blobs", 'd', ""},
                 {"blobs/sha256", 'd', ""},
                 {blob(manifest), 'f', manifest},
                 {blob(config), 'f', config},
                 {blob(layer), 'f', layer}}));
}

// --- bundles ---------------------------------------------------------------

void bundleSeeds() {
  for (int level : {0, 3}) {
    testing::StringSink out;
    BundleWriter w(out, {.level = level, .threads = 1});
    w.openStream("metadata", "checkpoint.json")
        .write(R"({"format":1,"name":"web","spec":{"name":"web","image":"counter"}})");
    w.closeStream();
    w.openStream("criu", "pages-1.img").write(std::string(3000, '\0') + "pages");
    w.closeStream();
    w.openStream("changes", "rootfs-changes.json")
        .write(R"([{"mark":"A","path":"etc/new"},{"mark":"D","path":"tmp/old"}])");
    w.closeStream();
    w.openStream("rootfs", "rootfs.tar").write(tarBytes({{"etc/new", 'f', "x"}}));
    w.closeStream();
    w.openStream("volume", "data").write("volume bytes");
    w.closeStream();
    w.finish({{"note", "seed"}});
    seed("fuzz_bundle_reader", "level" + std::to_string(level), out.data);
  }
}

// --- streams ---------------------------------------------------------------

std::string streamMessage(const std::function<void(proto::StreamMessage::Builder)>& fill) {
  capnp::MallocMessageBuilder b;
  auto m = b.initRoot<proto::StreamMessage>();
  m.setVersion(proto::STREAM_PROTOCOL_VERSION);
  fill(m);
  return fuzz::encode(b);
}

void streamSeeds() {
  const char* t = "fuzz_chunk_receiver";
  auto open = [](const std::string& token) {
    return streamMessage([&](auto m) {
      auto o = m.initOpen();
      o.setToken(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(token.data()), token.size()));
      o.setLabel("checkpoint of web");
    });
  };
  std::vector<std::string> chunks = {"first chunk", std::string(100, 'x'), "last"};
  auto chunk = [](uint64_t seq, const std::string& d) {
    return streamMessage([&](auto m) {
      auto c = m.initChunk();
      c.setSeq(seq);
      c.setData(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(d.data()), d.size()));
      c.setXxh3(XXH3_64bits(d.data(), d.size()));
    });
  };
  uint64_t all_bytes = 0;
  XXH3_state_t* all = XXH3_createState();
  XXH3_64bits_reset(all);
  for (auto& c : chunks) {
    all_bytes += c.size();
    proto::addChunkHash(all, XXH3_64bits(c.data(), c.size()));
  }
  const uint64_t end_xxh3 = XXH3_64bits_digest(all);
  XXH3_freeState(all);
  std::string end = streamMessage([&](auto m) {
    auto e = m.initEnd();
    e.setChunks(chunks.size());
    e.setBytes(all_bytes);
    e.setXxh3(end_xxh3);
  });
  std::string whole;
  appendFrame(whole, 0, open("fuzz-token"));
  for (size_t i = 0; i < chunks.size(); ++i) appendFrame(whole, 0, chunk(i, chunks[i]));
  appendFrame(whole, 0, end);
  seed(t, "whole-stream", whole);

  // Link probes first (each answered with a credit), then the stream.
  std::string probed;
  appendFrame(probed, 0, open("fuzz-token"));
  for (int i = 0; i < 3; ++i) {
    appendFrame(probed, 0, streamMessage([](auto m) {
                  std::string p(64, static_cast<char>(0x5a));
                  m.setProbe(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(p.data()),
                                                 p.size()));
                }));
  }
  for (size_t i = 0; i < chunks.size(); ++i) appendFrame(probed, 0, chunk(i, chunks[i]));
  appendFrame(probed, 0, end);
  seed(t, "probed-stream", probed);

  // A stranger interleaves (wrong token, garbage, its own chunk), checksums fixed by the harness.
  std::string strangers;
  appendFrame(strangers, 1, open("guessed"));
  appendFrame(strangers, 0, open("fuzz-token"));
  appendFrame(strangers, 1, chunk(0, "evil"));
  appendFrame(strangers, 2, chunk(0, "good"));
  appendFrame(strangers, 1, "garbage");
  appendFrame(strangers, 2, streamMessage([](auto m) {
                auto e = m.initEnd();
                e.setChunks(1);
                e.setBytes(4);
              }));
  seed(t, "stranger", strangers);

  std::string aborted;
  appendFrame(aborted, 0, open("fuzz-token"));
  appendFrame(aborted, 0, streamMessage([](auto m) {
                auto a = m.initAbort();
                a.setCategory(proto::ErrorKind::PERMANENT);
                a.setMessage("disk full");
                a.setHost("hostA");
              }));
  seed(t, "abort", aborted);
}

// Post-copy's target end: the daemon asks, the source's run answers (one
// page held from pre-copy), the daemon closes, the source says it heard.
void pageFeedSeeds() {
  const char* t = "fuzz_page_feed";
  auto iov = [](uint32_t cmd, uint32_t pages, uint64_t vaddr, uint64_t id) {
    std::string b(24, '\0');
    std::memcpy(&b[0], &cmd, 4);
    std::memcpy(&b[4], &pages, 4);
    std::memcpy(&b[8], &vaddr, 8);
    std::memcpy(&b[16], &id, 8);
    return b;
  };
  auto bytes = [](const std::string& s) {
    return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
  };
  std::string run = streamMessage([&](auto m) {
    auto r = m.initPages();
    auto range = r.initRange();
    range.setId(1);
    range.setVaddr(0x10000);
    range.setPages(4);
    r.setKinds(bytes(std::string("\0\0\1\0", 4)));
    r.setHeld(bytes(std::string(16, '\2')));
    r.setData(bytes(std::string(3 * 4096, 'p')));
  });
  std::string whole;
  appendFrame(whole, 0, iov(7, 1, 0x10000 + 4096, 1));
  appendFrame(whole, 1, run);
  appendFrame(whole, 0, iov(0x1024, 0, 0, 0));
  appendFrame(whole, 1, streamMessage([](auto m) { m.setPagesHeld(); }));
  seed(t, "whole", whole);
  std::string outside;
  appendFrame(outside, 0, iov(7, 2, 0x20000, 1));
  seed(t, "outside", outside);
}

void pageStreamSeeds() {
  const char* t = "fuzz_page_stream";
  auto unit = [](uint32_t cmd, uint32_t pages, uint64_t vaddr, uint64_t id) {
    PageServerIov i{cmd, pages, vaddr, id};
    std::string u(kPageStreamUnit, '\0');
    std::memcpy(u.data(), &i, sizeof i);
    return u;
  };
  std::string whole;
  appendFrame(whole, 0, unit(kPsIovOpen2, 0, 0, 1 << 8 | 1));
  appendFrame(whole, 1, std::string(1, '\0'));
  appendFrame(whole, 0, unit(kPsPagePresent << 16 | kPsIovAddF, 2, 0x400000, 1 << 8 | 1));
  appendFrame(whole, 0, std::string(2 * kPageStreamUnit, 'p'));
  appendFrame(whole, 0, unit(kPsIovClose, 0, 0, 0));
  appendFrame(whole, 1, std::string(4, '\0'));
  seed(t, "whole", whole);
  std::string parent;  // a page server answering has_parent
  appendFrame(parent, 0, unit(kPsIovOpen2, 0, 0, 3 << 8 | 2));
  appendFrame(parent, 1, std::string(1, '\1'));
  appendFrame(parent, 0, unit(kPsIovClose, 0, 0, 0));
  seed(t, "parent", parent);
}

// --- control messages ------------------------------------------------------

void hostInfo(proto::HostInfo::Builder h, const char* name) {
  h.setHostName(name);
  h.setEngineVersion("0.1.0");
  h.setKernel("6.1.0");
  h.setArch("x86_64");
  h.initCpuFlags(2).set(0, "sse4_2");
  h.setPageSize(4096);
  h.setCriuVersion("4.1.1");
  h.setRuntimeName("runc");
  h.setRuntimeVersion("1.1.5");
  h.setCgroupVersion(1);
  h.setMemoryBytes(uint64_t{8} << 30);
  h.setCpus(4);
}

std::string hello(const char* name, const char* endpoint) {
  return message(1, [&](Builder b) {
    auto h = b.initHello();
    h.setName(name);
    h.setDataEndpoint(endpoint);
    hostInfo(h.initInfo(), name);
  });
}

std::string heartbeat(const char* name, const char* container) {
  return message(2, [&](Builder b) {
    auto h = b.initHeartbeat();
    h.setName(name);
    auto l = h.initLoad();
    l.setCpuPercent(40);
    l.setMemoryUsedBytes(uint64_t{2} << 30);
    l.setMemoryTotalBytes(uint64_t{8} << 30);
    auto cs = h.initContainers(container ? 1 : 0);
    if (container) {
      cs[0].setName(container);
      cs[0].setHost(name);
      cs[0].setImage("counter");
      cs[0].setStatus("running");
      cs[0].setMemoryBytes(64 << 20);
      cs[0].initSecrets(1).set(0, "token");
      cs[0].setReady(true);
    }
    auto im = h.initImages(1);
    im[0].setName("counter");
    im[0].setId(std::string(64, 'a'));
    h.initSecrets(1).set(0, "token");
  });
}

// Flags of the coordinator target: peer, and bit 4 "answer the last command".
constexpr uint8_t kA = 0, kB = 1, kCli = 2, kStranger = 3, kAnswer = 4;

void runSpec(proto::RunSpec::Builder s, const char* name) {
  s.setName(name);
  s.setImage("counter");
  auto args = s.initArgs(2);
  args.set(0, "/bin/sh");
  args.set(1, "-c");
  s.initEnv(1).set(0, "A=1");
  s.initVolumes(1).set(0, "data:/data");
  s.setUser("1000:1000");
  s.setUmask("0022");
  s.initSecrets(1).set(0, "token,type=env");
}

void coordinatorSeeds() {
  const char* t = "fuzz_coordinator";
  std::string two_hosts;
  appendFrame(two_hosts, kA, hello("hostA", "tcp://127.0.0.2:7100"));
  appendFrame(two_hosts, kB, hello("hostB", "tcp://127.0.0.3:7100"));
  appendFrame(two_hosts, kA, heartbeat("hostA", "web"));
  appendFrame(two_hosts, kB, heartbeat("hostB", nullptr));

  std::string s = two_hosts;
  appendFrame(s, kCli, message(10, [](Builder b) { b.setListHosts(); }));
  appendFrame(s, kCli, message(11, [](Builder b) { b.setListContainers(""); }));
  appendFrame(s, kCli, message(12, [](Builder b) { b.setListHistory(10); }));
  appendFrame(s, kCli, message(13, [](Builder b) { b.setListPending(); }));
  seed(t, "lists", s);

  // A migration, its commands answered as agents would.
  s = two_hosts;
  appendFrame(s, kCli, message(20, [](Builder b) {
                auto m = b.initMigrate();
                m.setContainer("web");
                m.setSource("hostA");
                m.setTarget("hostB");
                m.setPrecopy(0);
              }));
  appendFrame(s, kB | kAnswer, message(0, [](Builder b) {
                auto t = b.initStreamTicket();
                t.setEndpoint("tcp://127.0.0.3:40000");
              }));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) {
                auto p = b.initProgress();
                p.setPhase("transfer");
                p.setBytesDone(1000);
              }));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) {
                auto f = b.initMigration();
                f.setBytesRaw(5000);
                f.setBytesWire(3000);
                f.setDowntimeMs(120);
                f.initPhaseMs(1)[0].setPhase("dump");
              }));
  appendFrame(s, kB, heartbeat("hostB", "web"));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) { b.setOk(); }));
  appendFrame(s, kCli, message(21, [](Builder b) { b.setListHistory(5); }));
  seed(t, "migration", s);

  // The same, the target failing: rollback and cleanups.
  s = two_hosts;
  appendFrame(s, kCli, message(20, [](Builder b) {
                auto m = b.initMigrate();
                m.setContainer("web");
                m.setTarget("hostB");
              }));
  appendFrame(s, kB | kAnswer, message(0, [](Builder b) {
                auto e = b.initError();
                e.setCategory(proto::ErrorKind::RETRYABLE);
                e.setMessage("disk full");
                e.setHost("hostB");
              }));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) { b.setOk(); }));
  appendFrame(s, kB, hello("hostB", "tcp://127.0.0.3:7100"));
  appendFrame(s, kCli, message(22, [](Builder b) {
                auto r = b.initResumeSource();
                r.setMigration(1);
                r.setTargetLost(true);
              }));
  seed(t, "migration-fails", s);

  // Containers and secrets through the coordinator to an agent.
  s = two_hosts;
  appendFrame(s, kCli, message(30, [](Builder b) {
                auto r = b.initRun();
                r.setHost("hostA");
                runSpec(r.initSpec(), "db");
              }));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) {
                auto c = b.initContainer();
                c.setName("db");
                c.setHost("hostA");
                c.setStatus("running");
              }));
  appendFrame(s, kCli, message(31, [](Builder b) { b.setStop("web"); }));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) { b.initContainer().setName("web"); }));
  appendFrame(s, kCli, message(32, [](Builder b) { b.setRemove("web"); }));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) { b.setOk(); }));
  appendFrame(s, kCli, message(33, [](Builder b) {
                auto q = b.initGetLogsFrom();
                q.setContainer("db");
              }));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) {
                auto l = b.initLogChunk();
                l.initLines(1).set(0, "hello");
                l.setNextOffset(6);
              }));
  appendFrame(s, kCli, message(34, [](Builder b) {
                auto sec = b.initSecret();
                sec.setHost("hostA");
                sec.setOp(proto::Message::Secret::Op::CREATE);
                sec.setName("token");
                sec.setValue(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("v"), 1));
              }));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) { b.setOk(); }));
  seed(t, "containers", s);

  // Files, checkpoints and placement.
  s = two_hosts;
  appendFrame(s, kCli, message(40, [](Builder b) {
                auto i = b.initImportFile();
                i.setHost("hostB");
                i.setKind(proto::Message::ImportFile::Kind::IMAGE);
                i.setName("counter");
              }));
  appendFrame(s, kB | kAnswer, message(0, [](Builder b) {
                b.initStreamTicket().setEndpoint("tcp://127.0.0.3:40001");
              }));
  appendFrame(s, kCli, message(41, [](Builder b) {
                auto c = b.initCheckpoint();
                c.setContainer("web");
                c.setEndpoint("tcp://127.0.0.1:40002");
                c.setLeaveRunning(true);
              }));
  appendFrame(s, kA | kAnswer, message(0, [](Builder b) { b.initMigration().setBytesRaw(10); }));
  appendFrame(s, kCli, message(42, [](Builder b) {
                auto c = b.initCordon();
                c.setHost("hostB");
                c.setCordoned(true);
              }));
  appendFrame(s, kCli, message(43, [](Builder b) {
                auto c = b.initCordon();
                c.setHost("hostB");
                c.setCordoned(false);
              }));
  appendFrame(s, kCli, message(44, [](Builder b) {
                auto d = b.initDrain();
                d.setHost("hostA");
                d.setParallel(2);
                d.setDryRun(true);
              }));
  appendFrame(s, kCli, message(45, [](Builder b) {
                auto r = b.initRebalance();
                r.setHighPercent(10);
                r.setLowPercent(5);
              }));
  appendFrame(s, kA, message(46, [](Builder b) { b.setDrainHost("hostA"); }));
  appendFrame(s, kB | kAnswer, message(0, [](Builder b) {
                b.initStreamTicket().setEndpoint("tcp://127.0.0.3:40003");
              }));
  seed(t, "placement", s);

  // Strangers: a heartbeat before any hello, a reply nobody asked for, garbage.
  s.clear();
  appendFrame(s, kStranger, heartbeat("hostC", "web"));
  appendFrame(s, kStranger, message(7, [](Builder b) { b.setOk(); }));
  appendFrame(s, kStranger, "not a message at all");
  appendFrame(s, kStranger, hello("hostA", "tcp://127.0.0.9:1"));
  appendFrame(s, kCli, message(50, [](Builder b) { b.setPing(); }));
  seed(t, "strangers", s);
}

void agentSeeds() {
  const char* t = "fuzz_agent_commands";
  auto one = [&](const std::string& name, const std::function<void(Builder)>& fill) {
    std::string s;
    appendFrame(s, 0, message(100, fill));
    seed(t, name, s);
  };
  auto token = capnp::Data::Reader(reinterpret_cast<const kj::byte*>("tok"), 3);
  one("start", [](Builder b) { runSpec(b.initStartContainer(), "db"); });
  one("start-sdnotify", [](Builder b) {
    auto s = b.initStartContainer();
    runSpec(s, "db");
    s.setSdnotify("container");
  });
  one("stop", [](Builder b) { b.setStopContainer("web"); });
  one("remove", [](Builder b) { b.setRemoveContainer("done"); });
  one("commit", [](Builder b) { b.setCommitSource("frozen"); });
  one("rollback", [](Builder b) { b.setRollbackSource("frozen"); });
  one("discard", [](Builder b) {
    auto d = b.initDiscardTarget();
    d.setContainer("moved");
    d.setMigration(7);
  });
  one("inspect", [](Builder b) { b.setInspectContainer("web"); });
  one("logs", [](Builder b) {
    auto q = b.initReadLogsFrom();
    q.setContainer("web");
    q.setOffset(1);
  });
  one("secret-list", [](Builder b) { b.initSecret().setOp(proto::Message::Secret::Op::LIST); });
  one("secret-create", [&](Builder b) {
    auto s = b.initSecret();
    s.setName("new");
    s.setValue(token);
  });
  one("secret-remove", [](Builder b) {
    auto s = b.initSecret();
    s.setOp(proto::Message::Secret::Op::REMOVE);
    s.setName("token");
  });
  one("prepare-receive", [&](Builder b) {
    auto r = b.initPrepareReceive();
    r.setMigration(3);
    r.setContainer("incoming");
    r.setToken(token);
    r.initIgnore(1).set(0, "cpu");
  });
  one("send-checkpoint", [&](Builder b) {
    auto s = b.initSendCheckpoint();
    s.setMigration(3);
    s.setContainer("web");
    s.setEndpoint("tcp://127.0.0.1:9");
    s.setToken(token);
    s.setPrecopy(0);
  });
  one("prepare-import-image", [&](Builder b) {
    auto i = b.initPrepareImport();
    i.setKind(proto::Message::ImportFile::Kind::IMAGE);
    i.setName("counter");
    i.setToken(token);
  });
  one("prepare-import-checkpoint", [&](Builder b) {
    auto i = b.initPrepareImport();
    i.setKind(proto::Message::ImportFile::Kind::CHECKPOINT);
    i.setToken(token);
  });
  one("export", [&](Builder b) {
    auto e = b.initExportCheckpoint();
    e.setContainer("web");
    e.setEndpoint("tcp://127.0.0.1:9");
    e.setToken(token);
    e.setLevel(3);
  });
  one("send-image", [&](Builder b) {
    auto s = b.initSendImage();
    s.setImage("counter");
    s.setEndpoint("tcp://127.0.0.1:9");
    s.setToken(token);
  });
  // A sequence: a transfer claims web, then commit and rollback of it.
  std::string s;
  appendFrame(s, 0, message(1, [&](Builder b) {
                auto c = b.initSendCheckpoint();
                c.setContainer("web");
                c.setEndpoint("tcp://10.0.0.1:9");  // never run: not loopback
                c.setToken(token);
              }));
  appendFrame(s, 0, message(2, [](Builder b) { b.setCommitSource("web"); }));
  appendFrame(s, 0, message(3, [](Builder b) { b.setRollbackSource("web"); }));
  appendFrame(s, 0, message(4, [](Builder b) { b.setRemoveContainer("web"); }));
  seed(t, "sequence", s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR\n");
    return 2;
  }
  g_out = argv[1];
  layerSeeds();
  importSeeds();
  bundleSeeds();
  streamSeeds();
  pageFeedSeeds();
  pageStreamSeeds();
  coordinatorSeeds();
  agentSeeds();
  return 0;
}
