#include "engine/bundle/blocks.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <array>

#include "common/error.h"

namespace ferry {

BlockHash hashBlock(std::string_view block) {
  XXH128_hash_t h = XXH3_128bits(block.data(), block.size());
  return {h.low64, h.high64};
}

namespace {

// The gear table: 256 fixed pseudo-random words (splitmix64), the same on
// every host, so both ends of a migration cut alike.
const std::array<uint64_t, 256>& gear() {
  static const std::array<uint64_t, 256> table = [] {
    std::array<uint64_t, 256> t{};
    uint64_t x = 0x6a09e667f3bcc909ull;
    for (auto& v : t) {
      uint64_t z = (x += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      v = z ^ (z >> 31);
    }
    return t;
  }();
  return table;
}

// A cut where the top 13 bits of the rolling hash are zero: 1 in 8192
// positions, after the minimum.
constexpr uint64_t kCutMask = ~uint64_t{0} << 51;

}  // namespace

size_t Chunker::cut(std::string_view buf, bool last) const {
  if (how_ == Chunking::kPages) {
    if (buf.size() >= kPageBlock) return kPageBlock;
    return last ? buf.size() : 0;
  }
  if (buf.size() <= kMinContentBlock) return last ? buf.size() : 0;
  const auto& g = gear();
  size_t limit = std::min(buf.size(), kMaxContentBlock);
  uint64_t h = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(buf.data());
  // The hash covers the last 64 bytes at most, so starting it 64 bytes
  // before the minimum gives the same cuts as hashing from the start.
  for (size_t i = kMinContentBlock - 64; i < limit; ++i) {
    h = (h << 1) + g[p[i]];
    if (i >= kMinContentBlock && (h & kCutMask) == 0) return i + 1;
  }
  if (limit == kMaxContentBlock) return kMaxContentBlock;
  return last ? buf.size() : 0;
}

void Chunker::feed(std::string_view data, const Emit& emit) {
  std::string_view buf = data;
  if (!pending_.empty()) {
    pending_.append(data);
    buf = pending_;
  }
  size_t n;
  while (!buf.empty() && (n = cut(buf, false)) != 0) {
    emit(buf.substr(0, n));
    buf.remove_prefix(n);
  }
  // What is left waits for more (copied first: buf may point into pending_).
  std::string rest(buf);
  pending_ = std::move(rest);
}

void Chunker::finish(const Emit& emit) {
  std::string_view buf = pending_;
  while (!buf.empty()) {
    size_t n = cut(buf, true);
    emit(buf.substr(0, n));
    buf.remove_prefix(n);
  }
  pending_.clear();
}

// ---- the receiver's store ----------------------------------------------

BlockStore::BlockStore(std::filesystem::path file)
    : file_(std::move(file)),
      fd_(openFile(file_, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) {}

BlockStore::~BlockStore() {
  if (!keep_) ::unlink(file_.c_str());
}

void BlockStore::add(std::string_view block) {
  if (block.empty()) return;
  auto [it, fresh] = index_.try_emplace(hashBlock(block), Location{end_, 0});
  if (!fresh) return;
  try {
    ssize_t n = retryEintr(
        [&] { return ::pwrite(fd_.get(), block.data(), block.size(), static_cast<off_t>(end_)); });
    if (n != static_cast<ssize_t>(block.size())) {
      throwErrno("writing pre-copied blocks to " + file_.string());
    }
  } catch (...) {
    index_.erase(it);
    throw;
  }
  it->second.length = static_cast<uint32_t>(block.size());
  end_ += block.size();
}

void BlockStore::copyOut(const std::vector<Ref>& refs,
                         const std::function<void(std::string_view)>& out) {
  constexpr uint64_t kRun = 1 << 20;
  std::string buf;
  uint64_t run_start = 0, run_len = 0;
  auto flush = [&] {
    if (run_len == 0) return;
    buf.resize(run_len);
    size_t got = 0;
    while (got < run_len) {
      ssize_t n = retryEintr([&] {
        return ::pread(fd_.get(), buf.data() + got, run_len - got,
                       static_cast<off_t>(run_start + got));
      });
      if (n <= 0) throwErrno("reading pre-copied blocks from " + file_.string());
      got += static_cast<size_t>(n);
    }
    out(buf);
    run_len = 0;
  };
  for (const Ref& r : refs) {
    auto it = index_.find(r.hash);
    if (it == index_.end() || it->second.length != r.length) {
      throwInvalidInput("bad bundle: a reference names a block that was never sent");
    }
    const Location& loc = it->second;
    if (run_len > 0 && loc.offset == run_start + run_len && run_len + loc.length <= kRun) {
      run_len += loc.length;
      continue;
    }
    flush();
    run_start = loc.offset;
    run_len = loc.length;
  }
  flush();
}

}  // namespace ferry
