// The "pages" stream (engine/checkpoint/page_stream.h): what CRIU's dump
// sends its page server, relayed on the source and fed to a page server on
// the target. The relay's CRIU here is a fake (a thread speaking CRIU's
// side of the protocol on a socketpair): a real dump is the migration
// tests' (every cold migration streams its memory). The feed is tested
// against the real `criu page-server`, and against a fake one for the
// answers a real one gives only when it breaks.
#include "engine/checkpoint/page_stream.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "engine/runtime/config.h"
#include "engine/runtime/process.h"
#include "engine/runtime/runtime.h"
#include "tests/support/ci.h"
#include "tests/support/error_of.h"
#include "tests/support/string_stream.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using test::thrownError;
using testing::StringSink;

constexpr uint64_t kPid = 1;  // dst_id type: a process's pages
constexpr uint64_t kShmem = 2;

PageServerIov iov(uint32_t cmd, uint32_t nr = 0, uint64_t vaddr = 0, uint64_t id = 0) {
  return {cmd, nr, vaddr, id};
}
PageServerIov open2(uint64_t id) { return iov(kPsIovOpen2, 0, 0, id); }
PageServerIov add(uint32_t nr, uint64_t vaddr, uint64_t id, uint32_t flags = kPsPagePresent) {
  return iov(flags << 16 | kPsIovAddF, nr, vaddr, id);
}
PageServerIov closeIov() { return iov(kPsIovClose); }

std::string bytesOf(const PageServerIov& i) {
  return std::string(reinterpret_cast<const char*>(&i), sizeof i);
}
std::string unitOf(const PageServerIov& i) {
  std::string u = bytesOf(i);
  u.resize(kPageStreamUnit, '\0');
  return u;
}
// `n` pages, each filled with its own byte.
std::string pages(uint32_t n, char first) {
  std::string p;
  for (uint32_t i = 0; i < n; ++i) p.append(kPageStreamUnit, static_cast<char>(first + i));
  return p;
}

struct Pair {
  Pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a = UniqueFd(fds[0]);
    b = UniqueFd(fds[1]);
  }
  UniqueFd a, b;
};

void sendAll(int fd, const std::string& d) {
  size_t off = 0;
  while (off < d.size()) {
    ssize_t w = ::send(fd, d.data() + off, d.size() - off, MSG_NOSIGNAL);
    if (w <= 0) throwErrno("test send");
    off += static_cast<size_t>(w);
  }
}
std::string recvExactly(int fd, size_t n) {
  std::string d(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, d.data() + got, n - got, 0);
    if (r <= 0) return d.substr(0, got);
    got += static_cast<size_t>(r);
  }
  return d;
}

// A dump of two processes' pages and a shared memory segment, as CRIU's
// side sends it.
struct Dump {
  std::vector<std::pair<PageServerIov, std::string>> records = {
      {open2(7 << 8 | kPid), ""},
      {add(3, 0x400000, 7 << 8 | kPid), pages(3, 'a')},
      {add(1, 0x7f0000001000, 7 << 8 | kPid, kPsPagePresent | kPsPageLazy), pages(1, 'x')},
      {open2(9 << 8 | kPid), ""},
      {add(300, 0x10000000, 9 << 8 | kPid), pages(300, 0)},  // more than a MiB
      {open2(3 << 8 | kShmem), ""},
      {add(2, 0, 3 << 8 | kShmem), pages(2, 'S')},
      {closeIov(), ""},
  };
  // What the "pages" stream must hold: each record in a unit, its pages after.
  std::string stream() const {
    std::string s;
    for (const auto& [i, p] : records) s += unitOf(i) + p;
    return s;
  }
  // What a page server must receive: the bare records and pages.
  std::string wire() const {
    std::string s;
    for (const auto& [i, p] : records) s += bytesOf(i) + p;
    return s;
  }
};

// CRIU's side: sends every record and its pages, reading the answer to each
// open and to the close as CRIU does. Returns the answers it read.
std::string fakeCriu(int fd, const Dump& d) {
  std::string answers;
  for (const auto& [i, p] : d.records) {
    sendAll(fd, bytesOf(i) + p);
    if ((i.cmd & 0xffff) == kPsIovOpen2) answers += recvExactly(fd, 1);
    if ((i.cmd & 0xffff) == kPsIovClose) answers += recvExactly(fd, 4);
  }
  return answers;
}

TEST(PageServerIov, TakesWhatADumpWithoutAParentSends) {
  EXPECT_EQ(checkPageServerIov(open2(1 << 8 | kPid)), PsRecord::kOpen);
  EXPECT_EQ(checkPageServerIov(open2(1 << 8 | kShmem)), PsRecord::kOpen);
  EXPECT_EQ(checkPageServerIov(add(1, 0x1000, 1 << 8 | kPid)), PsRecord::kPages);
  EXPECT_EQ(checkPageServerIov(add(kPageStreamMaxRun, 0, 1 << 8 | kShmem)), PsRecord::kPages);
  EXPECT_EQ(checkPageServerIov(add(4, 0x2000, 1 << 8 | kPid, kPsPagePresent | kPsPageLazy)),
            PsRecord::kPages);
  EXPECT_EQ(checkPageServerIov(closeIov()), PsRecord::kClose);
  EXPECT_EQ(checkPageServerIov(iov(kPsIovForceClose)), PsRecord::kClose);
}

TEST(PageServerIov, RefusesEverythingElseSayingWhy) {
  const std::vector<std::pair<PageServerIov, std::string>> bad = {
      {iov(1), "not a command of a dump without a parent"},                  // PS_IOV_ADD
      {iov(3 | 1u << 16, 1, 0x1000, 1 << 8 | kPid), "not a command"},       // PS_IOV_HOLE
      {iov(7, 1, 0x1000, 1 << 8 | kPid), "not a command"},                  // PS_IOV_GET
      {add(1, 0x1000, 1 << 8 | kPid, 1), "only present pages"},             // PE_PARENT
      {add(1, 0x1000, 1 << 8 | kPid, kPsPageLazy), "only present pages"},   // lazy, not present
      {add(1, 0x1000, 1 << 8 | kPid, kPsPagePresent | 1), "only present pages"},
      {add(0, 0x1000, 1 << 8 | kPid), "a run of 1 to"},
      {add(kPageStreamMaxRun + 1, 0x1000, 1 << 8 | kPid), "a run of 1 to"},
      {add(1, 0x1234, 1 << 8 | kPid), "not page-aligned"},
      {add(1, 0x1000, 1 << 8 | 3), "neither a process's nor shared memory's pages"},
      {open2(1 << 8 | 0), "neither a process's nor shared memory's pagemap"},
      {iov(kPsIovOpen2, 1, 0, 1 << 8 | kPid), "an open carries nothing"},
      {iov(kPsIovOpen2 | 4u << 16, 0, 0, 1 << 8 | kPid), "an open carries nothing"},
      {iov(kPsIovClose, 0, 0, 1), "a close carries nothing"},
  };
  for (const auto& [i, why] : bad) {
    Error e = thrownError([&] { checkPageServerIov(i); });
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("page-server record (command"), std::string::npos)
        << e.what();
  }
}

TEST(PageStreamRelay, AnswersCriuAndWritesEachRecordInAUnitWithItsPages) {
  Dump d;
  Pair p;
  auto criu = std::async(std::launch::async, [&] { return fakeCriu(p.b.get(), d); });
  StringSink out;
  PageStreamStats stats = relayPageServer(p.a.get(), out, 5s);
  // has_parent 0 for each of the three opens, then status 0 for the close.
  EXPECT_EQ(criu.get(), std::string(3 + 4, '\0'));
  EXPECT_EQ(out.data, d.stream());
  EXPECT_EQ(stats.pagemaps, 3u);
  EXPECT_EQ(stats.pages, 306u);
  EXPECT_EQ(stats.bytes(), 306u * 4096);
}

TEST(PageStreamRelay, ACriuThatEndsEarlyGoesSilentOrSpeaksAnotherProtocolFailsTheRelay) {
  Dump d;
  {  // ends in the middle of a run of pages
    Pair p;
    std::string w = d.wire();
    sendAll(p.b.get(), w.substr(0, 24 + 24 + 5000));
    ::shutdown(p.b.get(), SHUT_WR);
    StringSink out;
    Error e = thrownError([&] { relayPageServer(p.a.get(), out, 5s); });
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
    EXPECT_NE(std::string(e.what()).find("ended before its close"), std::string::npos) << e.what();
  }
  {  // says nothing
    Pair p;
    StringSink out;
    Error e = thrownError([&] { relayPageServer(p.a.get(), out, 100ms); });
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
    EXPECT_NE(std::string(e.what()).find("silent for 100 ms"), std::string::npos) << e.what();
  }
  {  // a record this ferry does not know: CRIU's, so not the caller's bad input
    Pair p;
    sendAll(p.b.get(), bytesOf(iov(12)));
    StringSink out;
    Error e = thrownError([&] { relayPageServer(p.a.get(), out, 5s); });
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
    EXPECT_NE(std::string(e.what()).find("CRIU's page-server connection: page-server record"),
              std::string::npos)
        << e.what();
    EXPECT_TRUE(out.data.empty());
  }
}

TEST(PageStreamRelay, ASinkThatFailsStopsTheRelayWithItsOwnError) {
  struct Gone : ByteSink {
    int writes = 0;
    void write(std::string_view) override {
      if (++writes == 3) throw Error(ErrorCategory::kRetryable, "the target went away");
    }
  } gone;
  Dump d;
  Pair p;
  auto criu = std::async(std::launch::async, [&] {
    try {
      fakeCriu(p.b.get(), d);
    } catch (const Error&) {
    }
  });
  Error e = thrownError([&] { relayPageServer(p.a.get(), gone, 5s); });
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_STREQ(e.what(), "the target went away");
  p.a.reset();  // as the agent does: CRIU's dump then fails
  criu.get();
}

// A page server's side, faked: records what it receives and answers as
// told, to cause what a real one does only when it fails.
struct FakePageServer {
  explicit FakePageServer(int fd, char open_answer = 0, bool hang_up_at_close = false)
      : done(std::async(std::launch::async, [=] {
          std::string got;
          // An answer to a feed that already gave up fails: what it got stands.
          for (;;) try {
            std::string h = recvExactly(fd, 24);
            if (h.size() < 24) return got;
            got += h;
            PageServerIov i;
            std::memcpy(&i, h.data(), 24);
            uint32_t cmd = i.cmd & 0xffff;
            if (cmd == kPsIovOpen2) sendAll(fd, std::string(1, open_answer));
            if (cmd == kPsIovAddF) got += recvExactly(fd, uint64_t{i.nr_pages} * 4096);
            if (cmd == kPsIovClose) {
              if (!hang_up_at_close) sendAll(fd, std::string(4, '\0'));
              return got;
            }
          } catch (const Error&) {
            return got;
          }
        })) {}
  std::future<std::string> done;
};

// Writes `s` into the feed in slices of `slice` bytes, as records arrive.
void feedIn(PageStreamFeed& f, const std::string& s, size_t slice) {
  for (size_t off = 0; off < s.size(); off += slice) f.write(std::string_view(s).substr(off, slice));
}

TEST(PageStreamFeed, HandsThePageServerExactlyTheRecordsAndPagesInAnySlicing) {
  Dump d;
  for (size_t slice : {size_t{1} << 20, size_t{4096}, size_t{1000}, size_t{24}}) {
    Pair p;
    FakePageServer server(p.b.get());
    PageStreamFeed feed(p.a.get(), 5s);
    feedIn(feed, d.stream(), slice);
    feed.finish();
    EXPECT_EQ(feed.stats().pagemaps, 3u);
    EXPECT_EQ(feed.stats().pages, 306u);
    p.a.reset();
    EXPECT_EQ(server.done.get(), d.wire()) << "slices of " << slice;
  }
}

TEST(PageStreamFeed, RefusesABrokenStreamAsBadInput) {
  Dump d;
  const std::string good = d.stream();
  auto refused = [&](const std::string& stream, const std::string& why) {
    Pair p;
    FakePageServer server(p.b.get());
    PageStreamFeed feed(p.a.get(), 5s);
    Error e = thrownError([&] {
      feed.write(stream);
      feed.finish();
    });
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    p.a.reset();
    server.done.get();
  };
  refused(good.substr(0, good.size() - kPageStreamUnit), "ends before CRIU's close");
  refused(good.substr(0, kPageStreamUnit + 100), "ends before CRIU's close");
  refused(good + "x", "data after the close");
  std::string padded = good;
  padded[kPageStreamUnit + 4000] = 1;  // the first add's unit, past its 24 bytes
  refused(padded, "not zero past its 24 bytes");
  refused(unitOf(add(1, 0x1000, 1 << 8 | kPid)) + pages(1, 'a'), "pages before any open");
  refused(unitOf(open2(1 << 8 | kPid)) + unitOf(add(1, 0x1001, 1 << 8 | kPid)), "not page-aligned");
  // CRIU's page server would reopen (truncate) a pagemap for either.
  refused(unitOf(open2(1 << 8 | kPid)) + unitOf(open2(2 << 8 | kPid)) + unitOf(open2(1 << 8 | kPid)),
          "pagemap 0x101 opened twice");
  refused(unitOf(open2(1 << 8 | kPid)) + unitOf(open2(2 << 8 | kPid)) +
              unitOf(add(1, 0x1000, 1 << 8 | kPid)) + pages(1, 'a'),
          "pages for 0x101 while 0x201 is open");
}

TEST(PageStreamFeed, APageServerThatAnswersAParentOrHangsUpFailsTheFeed) {
  Dump d;
  {
    Pair p;
    FakePageServer server(p.b.get(), /*open_answer=*/1);
    PageStreamFeed feed(p.a.get(), 5s);
    Error e = thrownError([&] {
      feed.write(d.stream());
      feed.finish();
    });
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
    EXPECT_NE(std::string(e.what()).find("answered with a parent or a failure"), std::string::npos)
        << e.what();
    p.a.reset();
    server.done.get();
  }
  {
    Pair p;
    FakePageServer server(p.b.get(), 0, /*hang_up_at_close=*/true);
    PageStreamFeed feed(p.a.get(), 5s);
    Error e = thrownError([&] {
      feed.write(d.stream());
      server.done.get();
      p.b.reset();
      feed.finish();
    });
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
    EXPECT_NE(std::string(e.what()).find("ended early"), std::string::npos) << e.what();
  }
  {  // takes nothing at all
    Pair p;
    PageStreamFeed feed(p.a.get(), 100ms);
    Error e = thrownError([&] { feedIn(feed, d.stream(), 1 << 20); });
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
    EXPECT_NE(std::string(e.what()).find("took no pages for 100 ms"), std::string::npos)
        << e.what();
  }
}

// The real page server, as the target runs it: from the stream a relay
// made, it writes a pagemap image per open and the pages, byte for byte.
TEST(PageStreamFeed, CriusPageServerWritesThePagesItIsFed) {
  if (::geteuid() != 0) {
    if (testing::underCi()) FAIL() << "CRIU's page server needs root";
    GTEST_SKIP() << "CRIU's page server needs root";
  }
  EngineConfig cfg;
  cfg.tools.criu = defaultCriuPath();
  LocalCommandRunner runner;
  Runtime runtime(cfg, runner);
  TempDir dir;
  fs::path images = dir.path() / "images", work = dir.path() / "work";
  makeDirs(images, 0700);
  Dump d;
  Pair p;
  Child server = runtime.startPageServer(images, work, p.b.get());
  p.b.reset();
  PageStreamFeed feed(p.a.get(), 30s);
  feedIn(feed, d.stream(), 64 * 1024);
  feed.finish();
  ::shutdown(p.a.get(), SHUT_WR);
  auto status = server.waitFor(30s);
  ASSERT_TRUE(status) << "the page server did not end; log: " << readFile(work / "page-server.log");
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "wait status " << *status << "; log: " << readFile(work / "page-server.log");
  std::set<std::string> names;
  std::string written;
  for (const auto& e : fs::directory_iterator(images)) names.insert(e.path().filename().string());
  EXPECT_TRUE(names.count("pagemap-7.img")) << ::testing::PrintToString(names);
  EXPECT_TRUE(names.count("pagemap-9.img")) << ::testing::PrintToString(names);
  EXPECT_TRUE(names.count("pagemap-shmem-3.img")) << ::testing::PrintToString(names);
  // Each pagemap's pages go to a pages image of their own, in order.
  std::map<std::string, std::string> pages_images;
  for (const auto& n : names) {
    if (n.rfind("pages-", 0) == 0) pages_images[n] = readFile(images / n);
  }
  std::string all;
  for (const auto& [n, content] : pages_images) all += content;
  EXPECT_EQ(all.size(), 306u * 4096);
  std::string expected = pages(3, 'a') + pages(1, 'x');
  bool found = false;
  for (const auto& [n, content] : pages_images) found = found || content == expected;
  EXPECT_TRUE(found) << "no pages image holds the first process's pages";
}

}  // namespace
}  // namespace ferry
