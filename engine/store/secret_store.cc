#include "engine/store/secret_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "common/fs.h"
#include "common/names.h"
#include "common/strings.h"

namespace ferry {

SecretStore::SecretStore(fs::path dir) : dir_(std::move(dir)) {
  makeDirs(dir_, 0700);
  // Made by an older ferry or by hand: never readable by others.
  if (::chmod(dir_.c_str(), 0700) != 0) throwErrno("chmod " + dir_.string());
}

void SecretStore::put(const std::string& name, const std::string& value, bool replace) {
  validateName(name, "secret name");
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
    throwInvalidInput("secret name " + name + " ends in .tmp, which the store keeps for partial writes");
  }
  if (value.empty()) throwInvalidInput("secret " + name + " is empty; give it a value");
  if (value.size() > kMaxSecretBytes) {
    throwInvalidInput("secret " + name + " is " + std::to_string(value.size()) + " bytes; at most " +
                      std::to_string(kMaxSecretBytes) + " are kept");
  }
  if (exists(name) && !replace) {
    throwInvalidInput("secret " + name + " already exists (--replace to give it a new value)");
  }
  writeFileAtomic(dir_ / name, value, 0600);
}

bool SecretStore::exists(const std::string& name) const {
  validateName(name, "secret name");
  return pathExists(dir_ / name);
}

void SecretStore::secretMustExist(const std::string& name, const std::string& host) const {
  if (!exists(name)) {
    throwInvalidInput("secret '" + name + "' is not in " + host + "'s secrets store (create it there: " +
                      "ferry secret create " + name + " FILE --host " + host + ")");
  }
}

std::string SecretStore::get(const std::string& name, const std::string& host) const {
  secretMustExist(name, host);
  return readFile(dir_ / name);
}

std::vector<SecretInfo> SecretStore::list() const {
  std::vector<SecretInfo> out;
  for (const auto& e : fs::directory_iterator(dir_)) {
    std::string n = e.path().filename().string();
    bool partial = n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0;  // writeFileAtomic's
    if (!e.is_regular_file() || partial) continue;
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0) continue;
    out.push_back({n, static_cast<uint64_t>(st.st_size), static_cast<int64_t>(st.st_mtime)});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

void SecretStore::remove(const std::string& name) {
  validateName(name, "secret name");
  fs::remove(dir_ / name);
}

}  // namespace ferry
