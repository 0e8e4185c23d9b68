// Compression chosen record by record for a stream over a link whose rate
// was measured: each data record goes zstd-compressed only while
// compressing is measured to move it faster than the link moves it raw.
//
// The rule. Raw, the link carries L bytes a second. Compressed, the stream
// moves min(T x c, L / r) bytes of data a second: T threads compressing at
// c bytes of CPU time each, and the link carrying the smaller records (r,
// the compressed size over the raw size). A record is compressed when that
// is at least kMargin x L: compressing must win clearly, since on a link
// about as fast as the compressor it only adds CPU beside CRIU and the
// restore. c and r are the data's own, measured on the records compressed
// so far (moving averages: memory, a tar of the rootfs and a volume of
// archives compress differently; records under kMinObserved, whose timing
// is noise, do not count): records are compressed until kWarmup were
// measured (or kWarmupMaxRecords went, too small to count), and while records go raw, one in kSampleEvery is still
// compressed (it goes compressed, so nothing is wasted) to notice data that
// starts to compress.
//
// c is per CPU second (the compressing thread's CPU time), so it does not
// depend on what else shares the cores; T is the writer's threads (it keeps
// up to 2T records in flight, and CRIU and the encryption want cores too:
// T x c is what the compressor could do with T cores of its own). A link
// measured at 0 gets every record compressed.
//
// Thread-safety: next() on the writer's thread, observe() from any
// (the writer's compressing threads); figures() from any.
#pragma once

#include <cstdint>
#include <mutex>

namespace ferry {

class RecordCompression {
 public:
  static constexpr int kWarmup = 4;
  static constexpr int kWarmupMaxRecords = 16;
  static constexpr uint64_t kMinObserved = 64 << 10;
  static constexpr int kSampleEvery = 8;
  static constexpr double kMargin = 1.1;
  static constexpr double kAlpha = 0.25;  // weight of the newest record in the averages

  // `link_bytes_per_s`: what the link carried raw, measured; `threads`
  // compressing at once; `level` the zstd level of a compressed record.
  RecordCompression(double link_bytes_per_s, int threads, int level);

  // The level for the next compressible record: level() or 0 (raw).
  int next();
  // What compressing one record took: `raw` bytes to `compressed` (what
  // the record carries: the raw size when zstd did not shrink it) in
  // `cpu_ns` (building the record, of which compressing is nearly all).
  void observe(uint64_t raw, uint64_t compressed, int64_t cpu_ns);

  struct Figures {
    double link_bytes_per_s = 0;
    double ratio = 0;                // compressed / raw, the latest average (0: none yet)
    double bytes_per_cpu_s = 0;      // one thread's rate, the latest average (0: none yet)
    int threads = 0;
    int level = 0;
    uint64_t records = 0;            // compressible records
    uint64_t compressed_records = 0;
  };
  Figures figures() const;
  // Whether, by the averages so far, compressing beats the link (the rule
  // above); false before any record was measured.
  bool compressionPays() const;

  int level() const { return level_; }

 private:
  bool paysLocked() const;

  const double link_;
  const int threads_;
  const int level_;
  mutable std::mutex mu_;
  double ratio_ = 0, speed_ = 0;  // moving averages; 0 until the first observation
  uint64_t observed_ = 0;
  uint64_t records_ = 0, compressed_ = 0, raw_run_ = 0;
};

}  // namespace ferry
