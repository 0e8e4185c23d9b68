// layer_apply (engine/image) on any archive: an input is a mode byte (which
// Whiteouts, by its value mod 3) and the archive (a tar, plain or
// compressed). It is applied onto a root that a lower layer left -- a
// directory with a file, a relative and an absolute symlink both pointing to
// a directory outside the root -- or, for kToOverlay, onto an empty root (as
// the function requires).
//
// Besides ASan and UBSan, a confinement check: the directory outside the
// root, which the symlinks reach, must be exactly as it was afterwards
// (layer_apply.h: "nothing outside root_fd is written, linked, chmodded or
// deleted ... whatever the archive holds"). Anything else aborts.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/fd.h"
#include "common/error.h"
#include "common/fs.h"
#include "engine/image/layer_apply.h"
#include "fuzz/fuzz_support.h"

namespace {

using namespace ferry;

void writeFile(const fs::path& p, const std::string& content) {
  std::ofstream(p, std::ios::binary) << content;
}

// What `dir` holds, in a form to compare: names, types, modes, owners, sizes
// and contents of its entries (it is a flat directory here).
std::string describe(const fs::path& dir) {
  std::string out;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return "missing";
  out += std::to_string(st.st_mode) + ":" + std::to_string(st.st_uid) + ";";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    ::lstat(e.path().c_str(), &st);
    std::ifstream in(e.path(), std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), {});
    out += e.path().filename().string() + "=" + std::to_string(st.st_mode) + ":" +
           std::to_string(st.st_uid) + ":" + std::to_string(st.st_nlink) + ":" + content + ";";
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::quietLogs();
  if (size < 1) return 0;
  Whiteouts mode = static_cast<Whiteouts>(data[0] % 3);
  TempDir scratch(fuzz::scratchDir(), "layer-");
  fs::path root = scratch.path() / "root", outside = scratch.path() / "outside";
  fs::create_directories(outside);
  writeFile(outside / "canary", "outside the root");
  fs::create_directories(root);
  if (mode != Whiteouts::kToOverlay) {
    fs::create_directories(root / "etc");
    writeFile(root / "etc" / "passwd", "root:x:0:0::/root:/bin/sh\n");
    fs::create_symlink("../outside", root / "rel");
    fs::create_symlink(outside, root / "abs");
  }
  std::string before = describe(outside);

  UniqueFd archive(::memfd_create("layer", MFD_CLOEXEC));
  if (::write(archive.get(), data + 1, size - 1) != static_cast<ssize_t>(size - 1)) std::abort();
  ::lseek(archive.get(), 0, SEEK_SET);
  UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ExtractBudget budget;
  budget.limits.max_total_bytes = 16 << 20;
  try {
    applyLayer(archive.get(), root_fd.get(), mode, &budget);
  } catch (const Error&) {
    // Refused: what a hostile archive must get.
  }
  if (describe(outside) != before) {
    std::fprintf(stderr, "fuzz_layer_apply: the archive changed a directory outside the root\n");
    std::abort();
  }
  return 0;
}
