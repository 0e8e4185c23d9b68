// Image import (engine/image: ImageStore::import) on any file: a rootfs tar
// (plain or compressed) or an OCI image layout in a tar, as `ferry image
// import` and an image received over the network give it. Each input is
// written to a file and imported into a fresh store; the store's own limits
// are lowered (16 MiB) so that an input cannot fill the disk.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "engine/image/image_store.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ferry;
  fuzz::quietLogs();
  TempDir scratch(fuzz::scratchDir(), "import-");
  fs::path file = scratch.path() / "image.tar";
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(data),
                                              static_cast<std::streamsize>(size));
  BundleLimits limits;
  limits.max_total_bytes = 16 << 20;
  ImageStore store(scratch.path() / "images", limits);
  try {
    ImageRecord r = store.import("fuzz", file);
    (void)store.resolve(r.id);
  } catch (const Error&) {
    // Refused: what a hostile file must get.
  }
  return 0;
}
