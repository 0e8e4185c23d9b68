// The host's secrets: named values a container gets as environment
// variables (--secret NAME,type=env,target=VAR), one file each under
// <root>/secrets (directory 0700, files 0600), written atomically.
//
// A value is read only when a container's spec is written (runc's
// config.json, 0600) and never appears in records, logs, errors, listings or
// checkpoint metadata: those name the secret, never its value. Not
// thread-safe; the engine serialises mutations.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ferry {

namespace fs = std::filesystem;

// As Podman's file driver: at most 512000 bytes.
constexpr size_t kMaxSecretBytes = 512000;

struct SecretInfo {
  std::string name;
  uint64_t bytes = 0;
  int64_t created_unix = 0;  // when this value was stored
};

class SecretStore {
 public:
  explicit SecretStore(fs::path dir);  // <root>/secrets, created if missing

  // Stores a value. Throws Error kInvalidInput for a bad name, an empty or
  // oversized value, or an existing name without `replace`.
  void put(const std::string& name, const std::string& value, bool replace);
  // Throws Error kInvalidInput "secret 'X' is not in HOST's secrets store
  // (create it there: ...)" when missing.
  std::string get(const std::string& name, const std::string& host) const;
  bool exists(const std::string& name) const;
  // Throws as get() does when missing.
  void secretMustExist(const std::string& name, const std::string& host) const;
  std::vector<SecretInfo> list() const;  // by name
  void remove(const std::string& name);  // a missing secret is an error

 private:
  fs::path dir_;
};

}  // namespace ferry
