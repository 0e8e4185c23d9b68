// Named volumes: directories under <root>/volumes/<name>/_data, bind-mounted
// into containers. Not thread-safe; the engine serialises mutations.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ferry {

namespace fs = std::filesystem;

class VolumeStore {
 public:
  explicit VolumeStore(fs::path dir);  // <root>/volumes, created if missing

  // The volume's data directory, created if missing. Throws for a bad name.
  fs::path ensure(const std::string& name);
  bool exists(const std::string& name) const;
  // Whether the volume has no entries (true for a missing volume).
  bool empty(const std::string& name) const;
  fs::path path(const std::string& name) const;  // whether or not it exists
  std::vector<std::string> list() const;
  void remove(const std::string& name);  // a missing volume is not an error

 private:
  fs::path dir_;
};

}  // namespace ferry
