#include "engine/bundle/record_compression.h"

#include <algorithm>

namespace ferry {

RecordCompression::RecordCompression(double link_bytes_per_s, int threads, int level)
    : link_(link_bytes_per_s), threads_(std::max(1, threads)), level_(std::max(1, level)) {}

bool RecordCompression::paysLocked() const {
  if (observed_ == 0 || speed_ <= 0) return false;
  double moved = std::min(threads_ * speed_, ratio_ > 0 ? link_ / ratio_ : threads_ * speed_);
  return moved >= kMargin * link_;
}

bool RecordCompression::compressionPays() const {
  std::lock_guard lock(mu_);
  return paysLocked();
}

int RecordCompression::next() {
  std::lock_guard lock(mu_);
  ++records_;
  // Warming up: records compressed until kWarmup were measured (their
  // figures come back later, from other threads), or kWarmupMaxRecords
  // went without (all of them too small to count).
  bool warming = observed_ < static_cast<uint64_t>(kWarmup) &&
                 records_ <= static_cast<uint64_t>(kWarmupMaxRecords);
  bool compress = warming || paysLocked();
  if (!compress && ++raw_run_ >= static_cast<uint64_t>(kSampleEvery)) compress = true;
  if (!compress) return 0;
  raw_run_ = 0;
  ++compressed_;
  return level_;
}

void RecordCompression::observe(uint64_t raw, uint64_t compressed, int64_t cpu_ns) {
  if (raw < kMinObserved) return;
  double r = std::min(1.0, static_cast<double>(compressed) / static_cast<double>(raw));
  // A record compressed faster than the clock can tell counts at 1 us.
  double s = static_cast<double>(raw) / (static_cast<double>(std::max<int64_t>(cpu_ns, 1000)) * 1e-9);
  std::lock_guard lock(mu_);
  if (observed_++ == 0) {
    ratio_ = r;
    speed_ = s;
  } else {
    ratio_ += kAlpha * (r - ratio_);
    speed_ += kAlpha * (s - speed_);
  }
}

RecordCompression::Figures RecordCompression::figures() const {
  std::lock_guard lock(mu_);
  return {link_, ratio_, speed_, threads_, level_, records_, compressed_};
}

}  // namespace ferry
