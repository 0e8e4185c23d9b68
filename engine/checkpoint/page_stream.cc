#include "engine/checkpoint/page_stream.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/fd.h"

namespace ferry {

namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

// Waits until `fd` is ready for `events`; false when `timeout` passed.
bool waitFor(int fd, short events, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("poll");
    return n > 0;
  }
}

// Reads exactly n bytes from CRIU; false on its EOF before the first.
bool readFromCriu(int fd, char* buf, size_t n, std::chrono::milliseconds timeout, bool eof_ok) {
  size_t got = 0;
  while (got < n) {
    if (!waitFor(fd, POLLIN, timeout)) {
      throw Error(ErrorCategory::kPermanent,
                  "CRIU's page-server connection was silent for " +
                      std::to_string(timeout.count()) + " ms");
    }
    ssize_t r = retryEintr([&] { return ::recv(fd, buf + got, n - got, 0); });
    if (r < 0) throwErrno("reading CRIU's page-server connection");
    if (r == 0) {
      if (got == 0 && eof_ok) return false;
      throw Error(ErrorCategory::kPermanent,
                  "CRIU's page-server connection ended before its close (the dump failed)");
    }
    got += static_cast<size_t>(r);
  }
  return true;
}

void answerCriu(int fd, const void* data, size_t n) {
  ssize_t w = retryEintr([&] { return ::send(fd, data, n, MSG_NOSIGNAL); });
  if (w != static_cast<ssize_t>(n)) throwErrno("answering CRIU's page-server connection");
}

std::string headerUnit(const PageServerIov& iov) {
  std::string u(kPageStreamUnit, '\0');
  std::memcpy(u.data(), &iov, sizeof iov);
  return u;
}

}  // namespace

PsRecord checkPageServerIov(const PageServerIov& iov) {
  const uint32_t command = iov.cmd & 0xffff, flags = iov.cmd >> 16;
  const uint64_t type = iov.dst_id & 0xff;
  auto bad = [&](const std::string& why) -> PsRecord {
    throwInvalidInput("page-server record (command " + hex(command) + ", flags " + hex(flags) +
                      ", " + std::to_string(iov.nr_pages) + " pages at " + hex(iov.vaddr) +
                      ", id " + hex(iov.dst_id) + "): " + why);
  };
  switch (command) {
    case kPsIovOpen2:
      if (flags != 0 || iov.nr_pages != 0 || iov.vaddr != 0) return bad("an open carries nothing");
      if (type != 1 && type != 2) return bad("neither a process's nor shared memory's pagemap");
      return PsRecord::kOpen;
    case kPsIovAddF:
      if ((flags & ~kPsPageLazy) != kPsPagePresent) {
        return bad("only present pages can be streamed (no parent images, no lazy pages)");
      }
      if (iov.nr_pages == 0 || iov.nr_pages > kPageStreamMaxRun) {
        return bad("a run of 1 to " + std::to_string(kPageStreamMaxRun) + " pages expected");
      }
      if (iov.vaddr % kPageStreamUnit != 0) return bad("the address is not page-aligned");
      if (type != 1 && type != 2) return bad("neither a process's nor shared memory's pages");
      return PsRecord::kPages;
    case kPsIovClose:
    case kPsIovForceClose:
      if (flags != 0 || iov.nr_pages != 0 || iov.vaddr != 0 || iov.dst_id != 0) {
        return bad("a close carries nothing");
      }
      return PsRecord::kClose;
    default:
      return bad("not a command of a dump without a parent (open, add, close)");
  }
}

PageStreamStats relayPageServer(int criu, ByteSink& out, std::chrono::milliseconds timeout) {
  PageStreamStats stats;
  std::string buf;
  for (;;) {
    PageServerIov iov;
    readFromCriu(criu, reinterpret_cast<char*>(&iov), sizeof iov, timeout, false);
    PsRecord kind = withContext("CRIU's page-server connection", [&] {
      try {
        return checkPageServerIov(iov);
      } catch (Error& e) {
        // CRIU's own output: a protocol this ferry does not know, not bad input.
        throw Error(ErrorCategory::kPermanent, e.message());
      }
    });
    out.write(headerUnit(iov));
    if (kind == PsRecord::kOpen) {
      ++stats.pagemaps;
      const char has_parent = 0;
      answerCriu(criu, &has_parent, 1);
      continue;
    }
    if (kind == PsRecord::kClose) {
      const int32_t status = 0;
      answerCriu(criu, &status, sizeof status);
      return stats;
    }
    // The pages, a MiB at a time: the bundle cuts its records from them.
    uint64_t left = uint64_t{iov.nr_pages} * kPageStreamUnit;
    while (left > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, uint64_t{1} << 20));
      buf.resize(n);
      readFromCriu(criu, buf.data(), n, timeout, false);
      out.write(buf);
      left -= n;
    }
    stats.pages += iov.nr_pages;
  }
}

PageStreamFeed::PageStreamFeed(int page_server, std::chrono::milliseconds timeout)
    : fd_(page_server), timeout_(timeout) {}

void PageStreamFeed::write(std::string_view data) {
  while (!data.empty()) {
    if (closed_) throwInvalidInput("bad pages stream: data after the close");
    if (payload_left_ > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(payload_left_, data.size()));
      send(data.substr(0, n));
      payload_left_ -= n;
      data.remove_prefix(n);
      continue;
    }
    size_t n = std::min(kPageStreamUnit - unit_.size(), data.size());
    unit_.append(data.substr(0, n));
    data.remove_prefix(n);
    if (unit_.size() == kPageStreamUnit) unit();
  }
}

void PageStreamFeed::unit() {
  if (unit_.find_first_not_of('\0', sizeof(PageServerIov)) != std::string::npos) {
    throwInvalidInput("bad pages stream: a record's unit is not zero past its 24 bytes");
  }
  PageServerIov iov;
  std::memcpy(&iov, unit_.data(), sizeof iov);
  unit_.clear();
  PsRecord kind = withContext("bad pages stream", [&] { return checkPageServerIov(iov); });
  switch (kind) {
    case PsRecord::kOpen:
      if (!opened_.insert(iov.dst_id).second) {
        throwInvalidInput("bad pages stream: pagemap " + hex(iov.dst_id) + " opened twice");
      }
      current_ = iov.dst_id;
      ++stats_.pagemaps;
      answers_due_ += 1;
      break;
    case PsRecord::kPages:
      if (stats_.pagemaps == 0) throwInvalidInput("bad pages stream: pages before any open");
      if (iov.dst_id != current_) {
        throwInvalidInput("bad pages stream: pages for " + hex(iov.dst_id) + " while " +
                          hex(current_) + " is open");
      }
      payload_left_ = uint64_t{iov.nr_pages} * kPageStreamUnit;
      stats_.pages += iov.nr_pages;
      break;
    case PsRecord::kClose:
      closed_ = true;
      answers_due_ += 4;
      break;
  }
  // Counted first, sent after: an answer read while sending is expected.
  send(std::string_view(reinterpret_cast<const char*>(&iov), sizeof iov));
}

void PageStreamFeed::send(std::string_view data) {
  while (!data.empty()) {
    readAnswers(false);
    ssize_t w = retryEintr([&] { return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT); });
    if (w > 0) {
      data.remove_prefix(static_cast<size_t>(w));
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      throwErrno("CRIU's page server stopped taking pages");
    }
    if (!waitFor(fd_, POLLOUT | POLLIN, timeout_)) {
      throw Error(ErrorCategory::kPermanent, "CRIU's page server took no pages for " +
                                                 std::to_string(timeout_.count()) + " ms");
    }
  }
}

void PageStreamFeed::readAnswers(bool wait) {
  char buf[256];
  while (answers_read_ < answers_due_) {
    ssize_t r = retryEintr([&] { return ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT); });
    if (r > 0) {
      if (answers_read_ + static_cast<uint64_t>(r) > answers_due_) {
        throw Error(ErrorCategory::kPermanent, "CRIU's page server answered more than asked");
      }
      // Every answer is 0: no parent for an open, success for the close.
      if (std::any_of(buf, buf + r, [](char c) { return c != 0; })) {
        throw Error(ErrorCategory::kPermanent,
                    "CRIU's page server answered with a parent or a failure (see its log)");
      }
      answers_read_ += static_cast<uint64_t>(r);
      continue;
    }
    if (r == 0) throw Error(ErrorCategory::kPermanent, "CRIU's page server ended early (see its log)");
    if (errno != EAGAIN && errno != EWOULDBLOCK) throwErrno("reading CRIU's page server");
    if (!wait) return;
    if (!waitFor(fd_, POLLIN, timeout_)) {
      throw Error(ErrorCategory::kPermanent, "CRIU's page server did not answer within " +
                                                 std::to_string(timeout_.count()) + " ms");
    }
  }
}

void PageStreamFeed::finish() {
  if (!closed_ || payload_left_ > 0 || !unit_.empty()) {
    throwInvalidInput("bad pages stream: it ends before CRIU's close");
  }
  readAnswers(true);
}

}  // namespace ferry
