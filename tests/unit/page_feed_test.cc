// Post-copy's page feed over a real chunk stream. The two local ends stand
// in for CRIU's page server and lazy-pages daemon, speaking their protocol
// (24-byte page_server_iov records, criu/page-xfer.c) as CRIU 4.1 does:
// the page server answers up to the end of the range it holds a page in and
// fails on a page it does not hold; the daemon takes a shorter answer and
// asks again for the rest. The real pair runs in the post-copy migration
// tests (tests/integration/postcopy_test.cc).
#include "protocol/page_feed.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <future>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

#include "tests/support/error_of.h"

#include "protocol/chunk_stream.h"

namespace ferry::proto {
namespace {

using std::chrono::milliseconds;

constexpr uint32_t kGet = 7, kAddF = 6, kForceClose = 0x1024;
constexpr size_t kPage = kPostcopyPageBytes;

struct Iov {
  uint32_t cmd = 0, nr_pages = 0;
  uint64_t vaddr = 0, dst_id = 0;
};
static_assert(sizeof(Iov) == 24);

// What the page at `vaddr` of process `id` holds: a few words that say
// where it is, so a page in the wrong place is caught.
std::string pageAt(uint64_t id, uint64_t vaddr) {
  std::string p(kPage, '\0');
  std::mt19937_64 rng(id * 1000003 + vaddr / kPage);
  for (size_t i = 0; i < kPage; i += 512) {
    uint64_t v = rng();
    std::memcpy(&p[i], &v, 8);
  }
  return p;
}

bool readFull(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

void writeFull(int fd, const void* buf, size_t n) {
  auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t put = ::send(fd, p, n, MSG_NOSIGNAL);
    if (put <= 0) return;
    p += put;
    n -= static_cast<size_t>(put);
  }
}

StreamOptions fast(milliseconds timeout = milliseconds(5000)) {
  return {.chunk_bytes = 256 << 10, .window = 4, .timeout = timeout};
}

// Two processes' lazy memory: three ranges, one of them longer than a run.
const std::vector<PageRange> kLazy = {
    {1, 0x7f0000000000, 600}, {1, 0x7f0000400000, 3}, {7, 0x400000, 50}};

uint64_t totalPages(const std::vector<PageRange>& lazy) {
  uint64_t n = 0;
  for (const auto& r : lazy) n += r.pages;
  return n;
}

const PageRange* rangeAt(const std::vector<PageRange>& lazy, uint64_t id, uint64_t vaddr) {
  for (const auto& r : lazy) {
    if (r.id == id && vaddr >= r.vaddr && vaddr < r.end()) return &r;
  }
  return nullptr;
}

// CRIU's page server: answers GET with at most `clamp` pages, never past
// the end of the range; a page it does not hold ends it (as CRIU's does).
// `hang_after` answers, it answers half of the next and then nothing.
struct FakePageServer {
  int sock[2] = {-1, -1};  // [0] the source agent's end
  std::thread thread;
  std::atomic<int> gets{0};
  std::atomic<bool> release{false};

  FakePageServer(std::vector<PageRange> lazy, uint32_t clamp, int hang_after = -1) {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock), 0);
    thread = std::thread([this, lazy, clamp, hang_after] {
      int fd = sock[1];
      Iov q;
      while (readFull(fd, &q, sizeof q)) {
        const PageRange* r = rangeAt(lazy, q.dst_id, q.vaddr);
        if (q.cmd != kGet || r == nullptr || q.nr_pages == 0) break;
        uint32_t n = std::min<uint64_t>({q.nr_pages, clamp, (r->end() - q.vaddr) / kPage});
        Iov a{kAddF | (4u << 16), n, q.vaddr, q.dst_id};
        std::string pages;
        for (uint32_t i = 0; i < n; ++i) pages += pageAt(q.dst_id, q.vaddr + i * kPage);
        if (gets++ == hang_after) {
          writeFull(fd, &a, sizeof a);
          writeFull(fd, pages.data(), pages.size() / 2);
          while (!release) std::this_thread::sleep_for(milliseconds(10));
          break;
        }
        writeFull(fd, &a, sizeof a);
        writeFull(fd, pages.data(), pages.size());
      }
      ::shutdown(fd, SHUT_RDWR);
    });
  }
  ~FakePageServer() {
    release = true;
    ::shutdown(sock[0], SHUT_RDWR);
    thread.join();
    for (int f : sock) ::close(f);
  }
};

// CRIU's lazy-pages daemon: asks for `asks` in order, one at a time, takes
// a shorter answer and asks for the rest, checks every page, then closes
// and waits for the status. Returns the pages it got intact.
// With `close_after`, it holds its close until that is set (the restore
// ended: a restore longer than the fetching is tested elsewhere).
uint64_t lazyDaemon(int fd, std::deque<Iov> asks, bool* status_ok = nullptr,
                    const std::atomic<bool>* close_after = nullptr) {
  uint64_t good = 0;
  while (!asks.empty()) {
    Iov q = asks.front();
    asks.pop_front();
    q.cmd = kGet;
    writeFull(fd, &q, sizeof q);
    Iov a;
    if (!readFull(fd, &a, sizeof a)) return good;
    EXPECT_EQ(a.vaddr, q.vaddr);
    EXPECT_EQ(a.dst_id, q.dst_id);
    EXPECT_GE(a.nr_pages, 1u);
    EXPECT_LE(a.nr_pages, q.nr_pages);
    if (a.nr_pages == 0 || a.nr_pages > q.nr_pages) return good;
    std::string pages(a.nr_pages * kPage, '\0');
    if (!readFull(fd, pages.data(), pages.size())) return good;
    for (uint32_t i = 0; i < a.nr_pages; ++i) {
      good += pages.compare(i * kPage, kPage, pageAt(q.dst_id, q.vaddr + i * kPage)) == 0;
    }
    if (a.nr_pages < q.nr_pages) {
      asks.push_front({kGet, q.nr_pages - a.nr_pages, q.vaddr + a.nr_pages * kPage, q.dst_id});
    }
  }
  while (close_after && !close_after->load()) std::this_thread::sleep_for(milliseconds(5));
  Iov close{kForceClose, 0, 0, 0};
  writeFull(fd, &close, sizeof close);
  int32_t status = -1;
  bool ok = readFull(fd, &status, sizeof status) && status == 0;
  if (status_ok) *status_ok = ok;
  ::close(fd);
  return good;
}

// Every page of `lazy`, asked for as CRIU's daemon does in the background
// (growing runs), with faults for single pages in between.
std::deque<Iov> everyPage(const std::vector<PageRange>& lazy) {
  std::deque<Iov> asks;
  for (const auto& r : lazy) {
    uint64_t at = r.vaddr;
    uint32_t step = 16;
    while (at < r.end()) {
      uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(step, (r.end() - at) / kPage));
      asks.push_back({kGet, n, at, r.id});
      at += n * kPage;
      step = std::min(step + 16, 1024u);
    }
  }
  return asks;
}

// The daemon's connection: [0] the daemon's end, [1] the target agent's.
struct DaemonPair {
  int fd[2] = {-1, -1};
  DaemonPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0); }
  ~DaemonPair() {
    for (int f : fd) if (f >= 0) ::close(f);
  }
};

// Whether the daemon's end saw anything (bytes or an EOF) within `ms`.
bool daemonHears(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

std::string drain(ChunkReceiver& r) {
  std::string out;
  char buf[4096];
  for (size_t n; (n = r.read(buf, sizeof buf)) > 0;) out.append(buf, n);
  return out;
}

// The sender side of a post-copy stream: its stats, or its error with what
// it could tell of the copy there (verdictUnknown, copyCutShort).
struct SenderOutcome {
  PageFeedStats stats;
  std::optional<Error> error;
  bool unknown = false, cut_short = false, told = false;
  uint64_t progress = 0;
};

std::future<SenderOutcome> sender(zmq::context_t& ctx, ChunkReceiver& rx, const std::string& token,
                                  int page_server, HeldLookup held = {},
                                  StreamOptions opts = fast()) {
  return std::async(std::launch::async, [&ctx, &rx, token, page_server, held, opts] {
    SenderOutcome out;
    ChunkSender tx(ctx, rx.endpoint(), token, "post-copy", opts);
    tx.write("the images");
    try {
      out.stats = tx.finishWithPages(
          page_server, held, [&] { out.told = true; }, [&](uint64_t n) { out.progress = n; });
    } catch (const Error& e) {
      out.error = e;
    }
    out.unknown = tx.verdictUnknown();
    out.cut_short = tx.copyCutShort();
    return out;
  });
}

class PageFeedTest : public ::testing::Test {
 protected:
  // A stream that carried "the images" and goes on to post-copy, its
  // sender answering from `ps`.
  void begin(const std::string& token, FakePageServer& ps, HeldLookup held = {},
             milliseconds target_timeout = milliseconds(5000),
             milliseconds sender_timeout = milliseconds(5000)) {
    rx_ = std::make_unique<ChunkReceiver>(ctx_, "tcp://127.0.0.1:0", token, "hostB",
                                          fast(target_timeout));
    sent_ = sender(ctx_, *rx_, token, ps.sock[0], held, fast(sender_timeout));
    EXPECT_EQ(drain(*rx_), "the images");
  }
  // CRIU's daemon, in a thread of its own, asking for `asks`.
  std::future<uint64_t> daemon(std::deque<Iov> asks, bool* status_ok = nullptr,
                               const std::atomic<bool>* close_after = nullptr) {
    int end = std::exchange(pair_.fd[0], -1);
    return std::async(std::launch::async, [end, asks, status_ok, close_after] {
      return lazyDaemon(end, asks, status_ok, close_after);
    });
  }
  PageFeedStats serve(const std::vector<PageRange>& lazy = kLazy, const HeldPages& held = {}) {
    return rx_->servePages(pair_.fd[1], lazy, held, restored_, stop_);
  }
  Error serveFails(const std::vector<PageRange>& lazy = kLazy) {
    return test::thrownError([&] { serve(lazy); });
  }

  zmq::context_t ctx_;
  std::unique_ptr<ChunkReceiver> rx_;
  std::future<SenderOutcome> sent_;
  DaemonPair pair_;
  std::atomic<bool> restored_{true}, stop_{false};
};

TEST_F(PageFeedTest, EveryPageArrivesOnceIntactAndTheVerdictFollowsTheDaemonsClose) {
  FakePageServer ps(kLazy, 100);
  restored_ = false;
  begin("tok-a", ps);
  // Faults first (one in the middle of a long range), then the background
  // fetch of everything; a fault for a page that was already fetched ahead.
  // As CRIU's daemon, it never asks again for a page it has.
  const Iov faults[] = {{kGet, 1, 0x400000 + 7 * kPage, 7}, {kGet, 1, 0x7f0000000000 + 300 * kPage, 1}};
  std::deque<Iov> asks;
  for (const Iov& q : everyPage(kLazy)) {
    Iov rest = q;
    for (const Iov& f : faults) {
      if (f.dst_id != rest.dst_id || f.vaddr < rest.vaddr ||
          f.vaddr >= rest.vaddr + rest.nr_pages * kPage) {
        continue;
      }
      uint32_t before = static_cast<uint32_t>((f.vaddr - rest.vaddr) / kPage);
      if (before > 0) asks.push_back({kGet, before, rest.vaddr, rest.dst_id});
      rest = {kGet, rest.nr_pages - before - 1, f.vaddr + kPage, rest.dst_id};
    }
    if (rest.nr_pages > 0) asks.push_back(rest);
  }
  for (const Iov& f : faults) asks.push_front(f);
  bool status_ok = false;
  // The pages may all cross before the 100 ms "restore" ends (they did, once
  // the stream stopped copying them): the daemon closes after it, so that
  // 'restored' is told while the feed runs.
  auto got = daemon(asks, &status_ok, &restored_);
  auto restoring = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(milliseconds(100));
    restored_ = true;
  });
  PageFeedStats at_target = serve();
  uint64_t asked_pages = 0;
  for (const auto& q : asks) asked_pages += q.nr_pages;
  EXPECT_EQ(got.get(), asked_pages) << "pages arrived damaged or not at all";
  EXPECT_TRUE(status_ok) << "the daemon's close was not answered";
  EXPECT_TRUE(at_target.complete);
  rx_->accept();
  SenderOutcome src = sent_.get();
  ASSERT_FALSE(src.error) << src.error->what();
  EXPECT_TRUE(src.told) << "the sender never heard 'restored'";
  EXPECT_TRUE(src.stats.complete);
  // Each page crossed once: fetched ahead, or on demand, never both.
  EXPECT_EQ(src.stats.urgent_pages + src.stats.ahead_pages, totalPages(kLazy));
  EXPECT_EQ(src.stats.bytes, totalPages(kLazy) * kPage);
  EXPECT_EQ(at_target.urgent_pages, src.stats.urgent_pages);
  EXPECT_EQ(at_target.ahead_pages, src.stats.ahead_pages);
  EXPECT_EQ(at_target.held_pages, 0u);
  EXPECT_GE(at_target.fault_requests, 2u);
  EXPECT_GT(at_target.background_requests, 10u);
  EXPECT_GT(src.progress, 0u);
}

// The hybrid: pages the target holds from pre-copy cross as names only.
TEST_F(PageFeedTest, PagesHeldFromPrecopyCrossAsNamesAndComeOutOfTheTargetsBlocks) {
  // "Pre-copied": every third page of process 1, by content.
  std::map<std::string, BlockName> precopied;
  std::map<BlockName, std::string> store;
  uint64_t held_expected = 0;
  for (const auto& r : kLazy) {
    for (uint32_t i = 0; i < r.pages; ++i) {
      if (r.id != 1 || i % 3 != 0) continue;
      std::string p = pageAt(r.id, r.vaddr + i * kPage);
      BlockName n{};
      uint64_t k = precopied.size() + 1;
      std::memcpy(n.data(), &k, 8);
      precopied[p] = n;
      store[n] = p;
      ++held_expected;
    }
  }
  HeldLookup lookup = [&](std::string_view page, BlockName& name) {
    auto it = precopied.find(std::string(page));
    if (it == precopied.end()) return false;
    name = it->second;
    return true;
  };
  std::atomic<uint64_t> looked_up{0};
  HeldPages from_store = [&](const std::vector<BlockName>& names, std::string& out) {
    for (const auto& n : names) {
      auto it = store.find(n);
      if (it == store.end()) throw Error(ErrorCategory::kInvalidInput, "not held");
      out += it->second;
      ++looked_up;
    }
  };
  FakePageServer ps(kLazy, 1024);
  begin("tok-h", ps, lookup);
  auto got = daemon(everyPage(kLazy));
  PageFeedStats at_target = serve(kLazy, from_store);
  EXPECT_EQ(got.get(), totalPages(kLazy));
  rx_->accept();
  SenderOutcome src = sent_.get();
  ASSERT_FALSE(src.error) << src.error->what();
  EXPECT_EQ(src.stats.held_pages, held_expected);
  EXPECT_EQ(at_target.held_pages, held_expected);
  EXPECT_EQ(looked_up.load(), held_expected);
  EXPECT_EQ(src.stats.bytes, (totalPages(kLazy) - held_expected) * kPage)
      << "pages the target held crossed as bytes";
}

TEST_F(PageFeedTest, ADaemonAskingForWhatTheDumpDoesNotHoldIsRefusedNotForwarded) {
  FakePageServer ps(kLazy, 1024);
  begin("tok-o", ps);
  Iov q{kGet, 1, 0x1000, 1};  // no lazy range there
  writeFull(pair_.fd[0], &q, sizeof q);
  Error e = serveFails();
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
  EXPECT_NE(std::string(e.what()).find("does not hold"), std::string::npos) << e.what();
  EXPECT_FALSE(daemonHears(pair_.fd[0], 0)) << "the daemon was answered";
  rx_->reject(e);  // as its agent does once it killed the copy there
  SenderOutcome src = sent_.get();
  ASSERT_TRUE(src.error);
  EXPECT_EQ(src.error->category(), ErrorCategory::kInvalidInput) << src.error->what();
  // The verdict came: the copy there is gone, the source need not wait.
  EXPECT_FALSE(src.cut_short);
  EXPECT_FALSE(src.unknown);
}

// A page server that hangs halfway through an answer: the target gives up
// (the source, stuck in it, goes silent), leaves the daemon's connection as
// it is (its agent kills the container before the daemon may let go), and
// the source knows the copy there is incomplete.
TEST_F(PageFeedTest, APageServerHangingMidAnswerEndsPostcopyAndTheSourceKnowsTheCopyIsCutShort) {
  FakePageServer ps(kLazy, 1024, /*hang_after=*/3);
  begin("tok-s", ps, {}, milliseconds(800), milliseconds(1500));
  auto got = daemon(everyPage(kLazy));
  auto t0 = std::chrono::steady_clock::now();
  Error e = serveFails();
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable) << e.what();
  EXPECT_NE(std::string(e.what()).find("during post-copy"), std::string::npos) << e.what();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  SenderOutcome src = sent_.get();
  ASSERT_TRUE(src.error);
  EXPECT_EQ(src.error->category(), ErrorCategory::kRetryable) << src.error->what();
  EXPECT_NE(std::string(src.error->what()).find("page server"), std::string::npos)
      << src.error->what();
  EXPECT_TRUE(src.cut_short);
  EXPECT_FALSE(src.unknown);
  ::shutdown(pair_.fd[1], SHUT_RDWR);  // as the agent's kill would end the daemon
  EXPECT_LT(got.get(), totalPages(kLazy));
}

// A page server that ends with a request open (its dump died): the source
// aborts, and the target fails without passing anything to the daemon.
TEST_F(PageFeedTest, APageServerEndingEarlyAbortsTheTargetWhichTellsTheDaemonNothing) {
  FakePageServer ps({kLazy[2]}, 1024);  // holds process 7 only: asking for 1 ends it
  begin("tok-e", ps);
  Iov q{kGet, 1, 0x7f0000000000, 1};
  writeFull(pair_.fd[0], &q, sizeof q);
  Error e = serveFails();
  EXPECT_NE(std::string(e.what()).find("aborted"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("page server ended"), std::string::npos) << e.what();
  EXPECT_FALSE(daemonHears(pair_.fd[0], 0)) << "the page server's end reached the daemon";
  rx_->reject(e);
  SenderOutcome src = sent_.get();
  EXPECT_TRUE(src.cut_short);
}

// Every page arrived and the source heard so, but the verdict was lost:
// the copy there may run, so the source cannot tell.
TEST_F(PageFeedTest, AVerdictLostAfterTheLastPageLeavesTheOutcomeUnknown) {
  FakePageServer ps(kLazy, 1024);
  begin("tok-u", ps, {}, milliseconds(5000), milliseconds(1500));
  bool status_ok = false;
  auto got = daemon(everyPage(kLazy), &status_ok);
  PageFeedStats at_target = serve();
  EXPECT_EQ(got.get(), totalPages(kLazy));
  EXPECT_TRUE(status_ok);
  EXPECT_TRUE(at_target.complete);
  // No verdict: the receiver is gone as far as the sender can tell.
  SenderOutcome src = sent_.get();
  ASSERT_TRUE(src.error);
  EXPECT_EQ(src.error->category(), ErrorCategory::kRetryable) << src.error->what();
  EXPECT_TRUE(src.unknown);
  EXPECT_FALSE(src.cut_short);
}

// The daemon's close is answered only once the source heard that every
// page arrived: a source gone before that leaves the daemon waiting (its
// agent kills the copy), never running on its own.
TEST_F(PageFeedTest, TheDaemonsCloseWaitsForTheSourceToHearEveryPageArrived) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-c", "hostB", fast(milliseconds(1000)));
  // A sender that sends the end and then falls silent: it never answers.
  ChunkSender tx(ctx_, rx.endpoint(), "tok-c", "post-copy", fast());
  tx.write("x");
  auto gone = std::async(std::launch::async, [&] {
    try {
      tx.finish();  // gives up at the first post-copy message, without a word
    } catch (const Error&) {
    }
  });
  EXPECT_EQ(drain(rx), "x");
  std::atomic<bool> restored{true}, stop{false};
  DaemonPair pair;
  Iov close{kForceClose, 0, 0, 0};
  writeFull(pair.fd[0], &close, sizeof close);
  // No lazy memory at all: the close is the daemon's first word.
  Error e = test::thrownError([&] { rx.servePages(pair.fd[1], {}, {}, restored, stop); });
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable) << e.what();
  EXPECT_FALSE(daemonHears(pair.fd[0], 0)) << "the daemon's close was answered";
  rx.reject(e);
  gone.get();
}

TEST_F(PageFeedTest, StoppingLeavesTheDaemonsConnectionToTheCaller) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-x", "hostB", fast());
  ChunkSender tx(ctx_, rx.endpoint(), "tok-x", "post-copy", fast());
  tx.write("x");
  auto ended = std::async(std::launch::async, [&] {
    try {
      tx.finish();  // sending the end is enough here
    } catch (const Error&) {
    }
  });
  EXPECT_EQ(drain(rx), "x");
  std::atomic<bool> restored{false}, stop{false};
  DaemonPair pair;
  auto stopper = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(milliseconds(300));
    stop = true;
  });
  Error e = test::thrownError([&] { rx.servePages(pair.fd[1], kLazy, {}, restored, stop); });
  EXPECT_NE(std::string(e.what()).find("stopped"), std::string::npos) << e.what();
  EXPECT_FALSE(daemonHears(pair.fd[0], 0));
  rx.reject(Error(ErrorCategory::kPermanent, "stopped"));
  ended.get();
}

}  // namespace
}  // namespace ferry::proto
