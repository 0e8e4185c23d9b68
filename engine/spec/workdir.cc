#include "engine/spec/workdir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <deque>

#include "common/error.h"

namespace ferry {

namespace {

constexpr int kMaxLinks = 40;

std::deque<std::string> components(const std::string& path) {
  std::deque<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += "/" + p;
  return s.empty() ? "/" : s;
}

bool onMount(const std::string& path, const std::vector<std::string>& mounts) {
  for (const auto& m : mounts) {
    if (m == "/") continue;
    if (path == m || path.rfind(m + "/", 0) == 0) return true;
  }
  return false;
}

}  // namespace

namespace {

enum class Missing { kCreate, kRefuse, kLeave };

Workdir resolve(const std::filesystem::path& rootfs, const std::string& cwd,
                const std::vector<std::string>& mounts, Missing missing, uint32_t uid, uint32_t gid,
                const std::string& what) {
  if (cwd.empty() || cwd.front() != '/') {
    throwInvalidInput("invalid " + what + " '" + cwd + "': must be an absolute path");
  }
  std::deque<std::string> todo = components(cwd);
  std::vector<std::string> resolved;
  int links = 0;
  while (!todo.empty()) {
    std::string c = todo.front();
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (!resolved.empty()) resolved.pop_back();
      continue;
    }
    resolved.push_back(c);
    std::string here = joined(resolved);
    if (onMount(here, mounts)) {
      std::string rest = here;
      for (const auto& t : todo) rest += "/" + t;
      return {rest, false, true};
    }
    std::filesystem::path host = rootfs / here.substr(1);
    struct stat st;
    if (::lstat(host.c_str(), &st) != 0) {
      if (errno != ENOENT) throwErrno(what + " " + cwd + ": stat " + here);
      if (missing == Missing::kRefuse) {
        throwInvalidInput(what + " " + cwd + " does not exist in the container (" + here +
                          " is missing) and creating it was not allowed");
      }
      if (missing == Missing::kLeave) {
        // The runtime makes the rest (beneath what was resolved).
        std::string rest = here;
        for (const auto& t : todo) {
          if (t == "..") throwInvalidInput("invalid " + what + " '" + cwd + "': '..' after a missing directory");
          if (t != ".") rest += "/" + t;
        }
        return {rest, false, false};
      }
      // Create it and everything after it, owned by the container's user.
      for (;;) {
        host = rootfs / joined(resolved).substr(1);
        if (::mkdir(host.c_str(), 0755) != 0)
          throwErrno("creating working directory " + joined(resolved));
        if (::lchown(host.c_str(), uid, gid) != 0) throwErrno("chown " + joined(resolved));
        if (todo.empty()) break;
        std::string next = todo.front();
        todo.pop_front();
        if (next == ".") continue;
        if (next == "..") {
          throwInvalidInput("invalid working directory '" + cwd +
                            "': '..' after a missing directory");
        }
        resolved.push_back(next);
      }
      return {joined(resolved), true, false};
    }
    if (S_ISLNK(st.st_mode)) {
      if (++links > kMaxLinks) {
        throwInvalidInput(what + " " + cwd + ": more than 40 symbolic links on the way");
      }
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(host.c_str(), target.data(), target.size());
      if (n < 0) throwErrno("readlink " + here);
      target.resize(static_cast<size_t>(n));
      resolved.pop_back();
      if (!target.empty() && target.front() == '/') resolved.clear();  // from the container's root
      std::deque<std::string> more = components(target);
      todo.insert(todo.begin(), more.begin(), more.end());
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      throwInvalidInput(what + " " + cwd + ": " + here +
                        " exists in the container but is not a directory");
    }
  }
  return {joined(resolved), false, false};
}

}  // namespace

Workdir prepareWorkdir(const std::filesystem::path& rootfs, const std::string& cwd,
                       const std::vector<std::string>& mounts, bool create, uint32_t uid,
                       uint32_t gid) {
  return resolve(rootfs, cwd, mounts, create ? Missing::kCreate : Missing::kRefuse, uid, gid,
                 "working directory");
}

std::string resolveMountDestination(const std::filesystem::path& rootfs, const std::string& dest,
                                    const std::vector<std::string>& mounts) {
  if (dest == "/") throwInvalidInput("a tmpfs cannot be mounted over the container's root");
  return resolve(rootfs, dest, mounts, Missing::kLeave, 0, 0, "tmpfs destination").path;
}

}  // namespace ferry
