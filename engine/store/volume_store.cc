#include "engine/store/volume_store.h"

#include <algorithm>

#include "common/fs.h"
#include "common/names.h"
#include "common/fs.h"

namespace ferry {

VolumeStore::VolumeStore(fs::path dir) : dir_(std::move(dir)) { makeDirs(dir_, 0700); }

fs::path VolumeStore::path(const std::string& name) const { return dir_ / name / "_data"; }

fs::path VolumeStore::ensure(const std::string& name) {
  validateName(name, "volume name");
  fs::path p = path(name);
  makeDirs(p);
  return p;
}

bool VolumeStore::exists(const std::string& name) const { return pathExists(path(name)); }

bool VolumeStore::empty(const std::string& name) const {
  std::error_code ec;
  return !exists(name) || fs::is_empty(path(name), ec);
}

std::vector<std::string> VolumeStore::list() const {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.is_directory()) names.push_back(e.path().filename());
  }
  std::sort(names.begin(), names.end());
  return names;
}

void VolumeStore::remove(const std::string& name) {
  validateName(name, "volume name");
  removeTree(dir_ / name);
}

}  // namespace ferry
