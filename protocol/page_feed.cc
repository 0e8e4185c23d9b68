#include "protocol/page_feed.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/criu_page_server.h"
#include "common/error.h"
#include "protocol/stream_message.h"

namespace ferry::proto {

namespace {

constexpr uint64_t kPage = kPostcopyPageBytes;

std::string psError(const std::string& what) {
  return "CRIU's page server " + what + " (its log is in the dump's work directory)";
}

// Blocking I/O on the page server's socket, whose timeouts bound each call.
void sendAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      throw Error(ErrorCategory::kRetryable, psError("took no request within its timeout"));
    }
    if (w <= 0) throwErrno(psError("is gone"));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void recvAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, MSG_WAITALL);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      throw Error(ErrorCategory::kRetryable, psError("did not answer within its timeout"));
    }
    if (r == 0) throw Error(ErrorCategory::kRetryable, psError("ended with pages still asked for"));
    if (r < 0) throwErrno(psError("failed"));
    p += r;
    n -= static_cast<size_t>(r);
  }
}

std::string describe(const PageRange& r) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%u pages at 0x%llx of process %llu", r.pages,
                static_cast<unsigned long long>(r.vaddr), static_cast<unsigned long long>(r.id));
  return buf;
}

void checkWanted(const PageRange& r) {
  if (r.pages == 0 || r.pages > PAGES_MAX_RUN || r.vaddr % kPage != 0 ||
      r.vaddr > UINT64_MAX - uint64_t{PAGES_MAX_RUN} * kPage) {
    violation("a want of " + describe(r));
  }
}

}  // namespace

// ---- the source's end -------------------------------------------------------

PageSource::PageSource(int page_server, HeldLookup held, SendFrame send,
                       std::chrono::milliseconds timeout)
    : ps_(page_server), held_(std::move(held)), send_(std::move(send)) {
  int flags = ::fcntl(ps_, F_GETFL);
  if (flags < 0 || ::fcntl(ps_, F_SETFL, flags & ~O_NONBLOCK) != 0) throwErrno("fcntl");
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  if (::setsockopt(ps_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(ps_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
    throwErrno("setting the page server connection's timeouts");
  }
  int one = 1;  // a TCP connection (CRIU's); a test may use another kind
  ::setsockopt(ps_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool PageSource::take(StreamMessage::Reader m) {
  switch (m.which()) {
    case StreamMessage::WANT: {
      auto w = m.getWant();
      PageRange r{w.getId(), w.getVaddr(), w.getPages()};
      checkWanted(r);
      if (urgent_.size() + ahead_.size() >= PAGES_WINDOW + 1) {
        violation("more pages wanted than the window allows");
      }
      (w.getUrgent() ? urgent_ : ahead_).push_back(r);
      return true;
    }
    case StreamMessage::PAGES_COMPLETE:
      // From now on a copy there may run on its own: never resume here
      // without knowing it does not.
      stats_.complete = true;
      send_(message([](StreamMessage::Builder b) { b.setPagesHeld(); }));
      return true;
    default:
      return false;
  }
}

void PageSource::fetch(const PageRange& r) {
  page_buf_.resize(uint64_t{r.pages} * kPage);
  uint32_t got = 0;
  while (got < r.pages) {
    // CRIU answers up to the end of the range it holds the page in.
    PageServerIov ask{kPsIovGet, r.pages - got, r.vaddr + got * kPage, r.id};
    sendAll(ps_, &ask, sizeof ask);
    PageServerIov ans;
    recvAll(ps_, &ans, sizeof ans);
    if ((ans.cmd & kPsCmdMask) != kPsIovAddF || ans.nr_pages == 0 || ans.nr_pages > ask.nr_pages ||
        ans.vaddr != ask.vaddr || ans.dst_id != ask.dst_id) {
      throw Error(ErrorCategory::kRetryable,
                  psError("answered other pages than " +
                          describe({ask.dst_id, ask.vaddr, ask.nr_pages})));
    }
    recvAll(ps_, page_buf_.data() + got * kPage, ans.nr_pages * kPage);
    got += ans.nr_pages;
  }
}

bool PageSource::answerOne() {
  if (urgent_.empty() && ahead_.empty()) return false;
  const bool urgent = !urgent_.empty();
  std::deque<PageRange>& from = urgent ? urgent_ : ahead_;
  PageRange r = from.front();
  from.pop_front();
  fetch(r);
  std::string kinds(r.pages, '\0');
  std::vector<BlockName> names;
  if (held_) {
    for (uint32_t i = 0; i < r.pages; ++i) {
      BlockName n;
      if (!held_(std::string_view(page_buf_).substr(i * kPage, kPage), n)) continue;
      kinds[i] = 1;
      names.push_back(n);
    }
  }
  const uint64_t data_pages = r.pages - names.size();
  send_(message([&](StreamMessage::Builder b) {
    auto run = b.initPages();
    auto range = run.initRange();
    range.setId(r.id);
    range.setVaddr(r.vaddr);
    range.setPages(r.pages);
    range.setUrgent(urgent);
    run.setKinds(dataOf(kinds));
    auto held = run.initHeld(static_cast<unsigned>(names.size() * 16));
    for (size_t i = 0; i < names.size(); ++i) std::memcpy(held.begin() + i * 16, names[i].data(), 16);
    auto data = run.initData(static_cast<unsigned>(data_pages * kPage));
    kj::byte* out = data.begin();
    for (uint32_t i = 0; i < r.pages; ++i) {
      if (kinds[i]) continue;
      std::memcpy(out, page_buf_.data() + i * kPage, kPage);
      out += kPage;
    }
  }));
  stats_.bytes += data_pages * kPage;
  stats_.held_pages += names.size();
  (urgent ? stats_.urgent_pages : stats_.ahead_pages) += data_pages;
  return true;
}

// ---- the target's end -------------------------------------------------------

PageTarget::PageTarget(int daemon, std::vector<PageRange> lazy, HeldPages held, SendFrame send,
                       uint64_t ahead_bytes)
    : fd_(daemon),
      lazy_(std::move(lazy)),
      held_(std::move(held)),
      send_(std::move(send)),
      ahead_bytes_(ahead_bytes) {
  int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) != 0) throwErrno("fcntl");
  std::sort(lazy_.begin(), lazy_.end(), [](const PageRange& a, const PageRange& b) {
    return a.id != b.id ? a.id < b.id : a.vaddr < b.vaddr;
  });
  for (size_t i = 0; i < lazy_.size(); ++i) {
    if (i > 0 && lazy_[i].id == lazy_[i - 1].id && lazy_[i].vaddr < lazy_[i - 1].end()) {
      throw Error(ErrorCategory::kInvalidInput,
                  "the dump's lazy ranges overlap (" + describe(lazy_[i]) + ")");
    }
    total_pages_ += lazy_[i].pages;
  }
}

short PageTarget::events() const {
  if (eof_) return 0;
  short ev = POLLIN;
  if (out_off_ < out_.size()) ev |= POLLOUT;
  return ev;
}

void PageTarget::onEvents(short revents) {
  if (eof_) return;
  if (revents & (POLLOUT | POLLERR)) writeOut();
  if (revents & (POLLIN | POLLHUP | POLLERR)) readRequests();
}

const PageRange* PageTarget::lazyRangeAt(uint64_t id, uint64_t vaddr) const {
  auto it = std::upper_bound(lazy_.begin(), lazy_.end(), std::make_pair(id, vaddr),
                             [](const std::pair<uint64_t, uint64_t>& k, const PageRange& r) {
                               return k.first != r.id ? k.first < r.id : k.second < r.vaddr;
                             });
  if (it == lazy_.begin()) return nullptr;
  --it;
  return it->id == id && vaddr >= it->vaddr && vaddr < it->end() ? &*it : nullptr;
}

void PageTarget::readRequests() {
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      eof_ = true;  // done (after its close was answered) or failed
      return;
    }
    in_.append(buf, static_cast<size_t>(n));
    size_t at = 0;
    for (; in_.size() - at >= sizeof(PageServerIov); at += sizeof(PageServerIov)) {
      PageServerIov q;
      std::memcpy(&q, in_.data() + at, sizeof q);
      const uint32_t cmd = q.cmd & kPsCmdMask;
      if (closing_) {
        throw Error(ErrorCategory::kInvalidInput, "the lazy-pages daemon asked after its close");
      }
      if (cmd == kPsIovClose || cmd == kPsIovForceClose) {
        closing_ = true;
        continue;
      }
      PageRange r{q.dst_id, q.vaddr, q.nr_pages};
      if (cmd != kPsIovGet || r.pages == 0 || r.vaddr % kPage != 0 ||
          lazyRangeAt(r.id, r.vaddr) == nullptr) {
        throw Error(ErrorCategory::kInvalidInput,
                    "the lazy-pages daemon asked for what the dump does not hold (command " +
                        std::to_string(q.cmd) + ", " + describe(r) + ")");
      }
      requests_.push_back(r);
      if (r.pages == 1) {
        ++stats_.fault_requests;
      } else {
        // Its background fetch: fetching ahead goes on from there.
        ++stats_.background_requests;
        cursor_ = static_cast<size_t>(lazyRangeAt(r.id, r.vaddr) - lazy_.data());
        cursor_at_ = r.vaddr;
      }
    }
    in_.erase(0, at);
  }
}

void PageTarget::writeOut() {
  while (out_off_ < out_.size()) {
    ssize_t n = ::send(fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) {  // the daemon is gone; its end is read next
      eof_ = true;
      return;
    }
    out_off_ += static_cast<size_t>(n);
  }
  out_.clear();
  out_off_ = 0;
}

bool PageTarget::inflight(uint64_t id, uint64_t vaddr) const {
  for (const Want& w : wants_) {
    if (w.range.id == id && vaddr >= w.range.vaddr && vaddr < w.range.end()) return true;
  }
  return false;
}

void PageTarget::markRequested(const PageRange& r) {
  auto& set = requested_[r.id];
  uint64_t a = r.vaddr, b = r.end(), fresh = r.end() - r.vaddr;
  auto it = set.upper_bound(a);
  if (it != set.begin() && std::prev(it)->second >= a) --it;
  while (it != set.end() && it->first <= b) {
    uint64_t lo = std::max(it->first, r.vaddr), hi = std::min(it->second, r.end());
    if (hi > lo) fresh -= hi - lo;
    a = std::min(a, it->first);
    b = std::max(b, it->second);
    it = set.erase(it);
  }
  set.emplace(a, b);
  requested_pages_ += fresh / kPage;
}

void PageTarget::sendWant(const PageRange& r, bool urgent) {
  send_(message([&](StreamMessage::Builder b) {
    auto w = b.initWant();
    w.setId(r.id);
    w.setVaddr(r.vaddr);
    w.setPages(r.pages);
    w.setUrgent(urgent);
  }));
  wants_.push_back({r, urgent});
  if (!urgent) ++ahead_wants_;
  inflight_pages_ += r.pages;
  markRequested(r);
}

bool PageTarget::nextAhead(PageRange& piece) {
  for (size_t scanned = 0; scanned <= lazy_.size(); ++scanned) {
    const PageRange& lr = lazy_[cursor_];
    const auto& set = requested_[lr.id];
    uint64_t at = std::max(cursor_at_, lr.vaddr);
    while (at < lr.end()) {
      auto it = set.upper_bound(at);
      if (it != set.begin() && std::prev(it)->second > at) {
        at = std::prev(it)->second;
        continue;
      }
      uint64_t end = std::min(lr.end(), at + uint64_t{PAGES_MAX_RUN} * kPage);
      if (it != set.end() && it->first < end) end = it->first;
      piece = {lr.id, at, static_cast<uint32_t>((end - at) / kPage)};
      cursor_at_ = end;
      return true;
    }
    cursor_ = (cursor_ + 1) % lazy_.size();
    cursor_at_ = 0;
  }
  return false;
}

void PageTarget::fetchAhead() {
  PageRange piece;
  while (ahead_wants_ < PAGES_WINDOW && requested_pages_ < total_pages_ &&
         buffered_bytes_ + inflight_pages_ * kPage < ahead_bytes_ && nextAhead(piece)) {
    sendWant(piece, false);
  }
}

bool PageTarget::answerHead() {
  const PageRange h = requests_.front();
  auto it = buffer_.upper_bound({h.id, h.vaddr});
  if (it != buffer_.begin()) {
    --it;
    const uint64_t start = it->first.second;
    Run& run = it->second;
    const uint64_t len = run.bytes.size() - run.off;
    if (it->first.first == h.id && h.vaddr >= start && h.vaddr < start + len) {
      // As many as it asked for and this run holds from there.
      const uint64_t skip = h.vaddr - start;
      const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(h.pages, (len - skip) / kPage));
      PageServerIov ans{kPsIovAddF | (kPsPagePresent << kPsFlagShift), n, h.vaddr, h.id};
      out_.append(reinterpret_cast<const char*>(&ans), sizeof ans);
      out_.append(run.bytes, run.off + skip, n * kPage);
      const uint64_t taken_end = skip + n * kPage;
      // What stays keeps only its own bytes: the pages before the ones
      // taken are copied out to an entry of their own (a daemon asking in
      // the middle of runs must not pin whole runs for a page each), those
      // after stay in this string, under their own address.
      if (skip > 0) {
        std::string front = run.bytes.substr(run.off, skip);
        if (taken_end == len) {
          run = Run{std::move(front), 0};
        } else {
          auto node = buffer_.extract(it);
          node.mapped().off += taken_end;
          node.key().second = h.vaddr + n * kPage;
          buffer_.insert(std::move(node));
          buffer_.emplace(std::make_pair(h.id, start), Run{std::move(front), 0});
        }
      } else if (taken_end < len) {
        auto node = buffer_.extract(it);
        node.mapped().off += n * kPage;
        node.key().second = h.vaddr + n * kPage;
        buffer_.insert(std::move(node));
      } else {
        buffer_.erase(it);
      }
      buffered_bytes_ -= n * kPage;
      requests_.pop_front();
      return true;
    }
  }
  if (!inflight(h.id, h.vaddr)) {
    // Not here, not coming: ask for it before anything else, up to what
    // is here or coming already.
    const PageRange* lr = lazyRangeAt(h.id, h.vaddr);
    uint64_t end = std::min({h.end(), lr->end(), h.vaddr + uint64_t{PAGES_MAX_RUN} * kPage});
    for (const Want& w : wants_) {
      if (w.range.id == h.id && w.range.vaddr > h.vaddr) end = std::min(end, w.range.vaddr);
    }
    auto next = buffer_.upper_bound({h.id, h.vaddr});
    if (next != buffer_.end() && next->first.first == h.id) end = std::min(end, next->first.second);
    sendWant({h.id, h.vaddr, static_cast<uint32_t>((end - h.vaddr) / kPage)}, true);
  }
  return false;
}

void PageTarget::takeRun(StreamMessage::PageRun::Reader run) {
  auto rr = run.getRange();
  PageRange r{rr.getId(), rr.getVaddr(), rr.getPages()};
  auto w = std::find_if(wants_.begin(), wants_.end(), [&](const Want& x) {
    return x.range.id == r.id && x.range.vaddr == r.vaddr && x.range.pages == r.pages;
  });
  if (w == wants_.end()) violation("pages that were not wanted (" + describe(r) + ")");
  auto kinds = run.getKinds();
  auto held = run.getHeld();
  auto data = run.getData();
  if (kinds.size() != r.pages) violation("a page run whose kinds do not match its pages");
  size_t held_count = 0;
  for (kj::byte k : kinds) {
    if (k > 1) violation("a page of unknown kind");
    held_count += k;
  }
  if (held.size() != held_count * 16 || data.size() != (r.pages - held_count) * kPage) {
    violation("a page run whose sizes do not match its kinds");
  }
  std::string from_store;
  if (held_count > 0) {
    if (!held_) violation("pages named as pre-copied, but none were pre-copied");
    std::vector<BlockName> names(held_count);
    for (size_t i = 0; i < held_count; ++i) std::memcpy(names[i].data(), held.begin() + i * 16, 16);
    held_(names, from_store);
    if (from_store.size() != held_count * kPage) violation("a pre-copied block that is not a page");
  }
  std::string bytes;
  bytes.reserve(uint64_t{r.pages} * kPage);
  size_t d = 0, s = 0;
  for (kj::byte k : kinds) {
    if (k) {
      bytes.append(from_store, s, kPage);
      s += kPage;
    } else {
      bytes.append(reinterpret_cast<const char*>(data.begin()) + d, kPage);
      d += kPage;
    }
  }
  const bool urgent = w->urgent;
  if (!urgent) --ahead_wants_;
  inflight_pages_ -= r.pages;
  wants_.erase(w);
  // Wants never overlap what is here (they stop at it): a run already
  // here at that address would be a bug, not the peer's doing.
  if (buffer_.count({r.id, r.vaddr}) != 0) {
    throw Error(ErrorCategory::kPermanent, "internal: pages wanted twice (" + describe(r) + ")");
  }
  buffered_bytes_ += bytes.size();
  buffer_.emplace(std::make_pair(r.id, r.vaddr), Run{std::move(bytes), 0});
  ++runs_;
  stats_.bytes += data.size();
  stats_.held_pages += held_count;
  (urgent ? stats_.urgent_pages : stats_.ahead_pages) += r.pages - held_count;
}

bool PageTarget::take(StreamMessage::Reader m) {
  switch (m.which()) {
    case StreamMessage::PAGES:
      takeRun(m.getPages());
      return true;
    case StreamMessage::PAGES_HELD:
      if (!complete_sent_) violation("'pagesHeld' before the target said it had them");
      held_heard_ = true;
      return true;
    default:
      return false;
  }
}

void PageTarget::pump(bool ahead) {
  if (eof_) return;
  while (!requests_.empty() && answerHead()) {
  }
  if (closing_ && requests_.empty() && !complete_sent_) {
    // Every page is in the daemon's hands; it goes on its own once the
    // source knows (see the header).
    complete_sent_ = true;
    send_(message([](StreamMessage::Builder b) { b.setPagesComplete(); }));
  }
  if (held_heard_ && !status_sent_) {
    int32_t status = 0;  // what CRIU's page server answers a close with
    out_.append(reinterpret_cast<const char*>(&status), sizeof status);
    status_sent_ = true;
    stats_.complete = true;
  }
  if (ahead && !closing_ && !lazy_.empty()) fetchAhead();
  writeOut();
}

}  // namespace ferry::proto
