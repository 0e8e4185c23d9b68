// Per-record compression over a measured link (engine/bundle/record_compression.h):
// when it compresses, when it sends raw, and that it follows the data. The
// observations are the test's (a real compressor's rate and ratio depend
// on the machine and the data; the integration test over a 1 Gbit/s link
// runs the real ones).
#include "engine/bundle/record_compression.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr double kMBs = 1e6;

// One record: asks its level, and reports what compressing it "took" when
// it was compressed: `ratio` of the size at `mbs` MB/s of CPU time.
int record(RecordCompression& rc, double ratio, double mbs) {
  int level = rc.next();
  if (level > 0) {
    rc.observe(kMiB, static_cast<uint64_t>(kMiB * ratio),
               static_cast<int64_t>(kMiB / (mbs * kMBs) * 1e9));
  }
  return level;
}

TEST(RecordCompression, ASlowLinkGetsEveryRecordCompressed) {
  RecordCompression rc(117 * kMBs, 2, 1);  // 1 Gbit/s
  for (int i = 0; i < 100; ++i) EXPECT_EQ(record(rc, 0.55, 480), 1) << "record " << i;
  EXPECT_TRUE(rc.compressionPays());
  auto f = rc.figures();
  EXPECT_EQ(f.records, 100u);
  EXPECT_EQ(f.compressed_records, 100u);
  EXPECT_NEAR(f.ratio, 0.55, 0.001);
  EXPECT_NEAR(f.bytes_per_cpu_s, 480 * kMBs, 1 * kMBs);
}

TEST(RecordCompression, AFastLinkGetsRecordsRawAfterTheWarmupButOneInEight) {
  RecordCompression rc(3000 * kMBs, 2, 1);  // faster than 2 x 480 MB/s
  int compressed = 0;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(record(rc, 0.55, 480), 1) << "warm-up record " << i;
  for (int i = 0; i < 80; ++i) compressed += record(rc, 0.55, 480) > 0;
  EXPECT_FALSE(rc.compressionPays());
  EXPECT_EQ(compressed, 80 / RecordCompression::kSampleEvery);
}

TEST(RecordCompression, IncompressibleDataGoesRawEvenOnASlowLink) {
  RecordCompression rc(117 * kMBs, 2, 1);
  int compressed = 0;
  for (int i = 0; i < 84; ++i) compressed += record(rc, 0.995, 900) > 0;
  EXPECT_FALSE(rc.compressionPays());
  EXPECT_EQ(compressed, 4 + 80 / RecordCompression::kSampleEvery);
}

TEST(RecordCompression, TheMarginDecidesNearTheLinksRate) {
  // 2 x 100 MB/s of CPU, ratio 0.5, link 185 MB/s: compressed moves 200 MB/s,
  // 8 % faster -- short of the 10 % margin, so raw.
  RecordCompression close(185 * kMBs, 2, 1);
  for (int i = 0; i < 4; ++i) record(close, 0.5, 100);
  EXPECT_FALSE(close.compressionPays());
  // Link 180 MB/s: 11 % faster, compressed.
  RecordCompression clear(180 * kMBs, 2, 1);
  for (int i = 0; i < 4; ++i) record(clear, 0.5, 100);
  EXPECT_TRUE(clear.compressionPays());
}

TEST(RecordCompression, ItFollowsTheDataFromRawToCompressedAndBack) {
  RecordCompression rc(117 * kMBs, 2, 1);
  for (int i = 0; i < 40; ++i) record(rc, 1.0, 900);  // random bytes: raw
  EXPECT_FALSE(rc.compressionPays());
  // Compressible data begins: a sampled record notices it, and records go
  // compressed from then on.
  int raw_before = 0;
  while (record(rc, 0.3, 700) == 0) ++raw_before;
  EXPECT_LT(raw_before, RecordCompression::kSampleEvery);
  for (int i = 0; i < 5; ++i) record(rc, 0.3, 700);
  EXPECT_TRUE(rc.compressionPays());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(record(rc, 0.3, 700), 1);
  // And back to data that does not compress.
  for (int i = 0; i < 60; ++i) record(rc, 1.0, 900);
  EXPECT_FALSE(rc.compressionPays());
}

TEST(RecordCompression, SmallRecordsAndNoFiguresDoNotDecide) {
  RecordCompression rc(117 * kMBs, 2, 1);
  EXPECT_FALSE(rc.compressionPays()) << "nothing measured yet";
  // Small records (CRIU's little images) are compressed but not counted:
  // warming up goes on while real ones may still come, up to 16 records.
  for (int i = 0; i < RecordCompression::kWarmupMaxRecords; ++i) {
    EXPECT_EQ(rc.next(), 1) << "record " << i;
    rc.observe(4096, 300, 1000);
  }
  EXPECT_EQ(rc.figures().ratio, 0);
  EXPECT_FALSE(rc.compressionPays());
  // Then, with nothing measured, raw but for one in eight.
  int compressed = 0;
  for (int i = 0; i < 16; ++i) compressed += rc.next() > 0;
  EXPECT_EQ(compressed, 16 / RecordCompression::kSampleEvery);
}

// The writer's threads report a record's figures after the next few were
// issued: the decision follows them once they come.
TEST(RecordCompression, FiguresThatArriveLateStillDecide) {
  RecordCompression rc(117 * kMBs, 2, 1);
  std::vector<int> in_flight;
  int compressed = 0;
  for (int i = 0; i < 40; ++i) {
    int level = rc.next();
    compressed += level > 0;
    in_flight.push_back(level);
    if (in_flight.size() > 5) {  // the oldest finishes
      if (in_flight.front() > 0) rc.observe(kMiB, kMiB, static_cast<int64_t>(kMiB / (900 * kMBs) * 1e9));
      in_flight.erase(in_flight.begin());
    }
  }
  // Incompressible: warm-up (4 measured, 5 more issued meanwhile), then one
  // in eight.
  EXPECT_FALSE(rc.compressionPays());
  EXPECT_LE(compressed, 4 + 5 + 40 / RecordCompression::kSampleEvery);
  EXPECT_GE(compressed, 4 + 40 / RecordCompression::kSampleEvery - 1);
}

}  // namespace
}  // namespace ferry
