// The bundle reader (engine/bundle) on any bytes: a checkpoint bundle is what
// a migration's target and `ferry checkpoint import` read from a peer or a
// file, so every byte of it is hostile. Each input is read into a fresh
// staging directory, as a restore does, and the directory removed after.
//
// Limits are lowered (16 MiB, 64 streams) so that an input cannot make the
// fuzzer write gigabytes; the checks themselves are the reader's.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "engine/bundle/bundle.h"
#include "fuzz/fuzz_support.h"
#include "tests/support/string_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::fuzz::quietLogs();
  ferry::TempDir staging(ferry::fuzz::scratchDir(), "bundle-");
  ferry::testing::StringSource in(std::string(reinterpret_cast<const char*>(data), size));
  ferry::BundleLimits limits;
  limits.max_total_bytes = 16 << 20;
  limits.max_streams = 64;
  try {
    ferry::BundleReadResult r = ferry::readBundle(in, staging.path(), limits);
    (void)r;
  } catch (const ferry::Error&) {
    // Refused with a clear error: what a hostile bundle must get.
  }
  return 0;
}
