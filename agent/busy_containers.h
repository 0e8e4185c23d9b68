// Containers with a transfer in progress on this host. Commit, rollback and
// discard of one wait until its transfer has ended; a second transfer of it
// is refused.
//
// Thread-safety: every call from any thread; the state is only reachable
// under its lock. Blocking: only awaitIdle, up to its timeout.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

namespace ferry::agent {

class BusyContainers {
 public:
  // `host` names this host in errors.
  explicit BusyContainers(std::string host) : host_(std::move(host)) {}

  void markBusy(const std::string& container);
  // markBusy, refused (Error kRetryable) when a transfer of it is under way.
  void claimForTransfer(const std::string& container);
  void markIdle(const std::string& container);
  // Throws Error kRetryable when `container` is still busy after `wait`.
  void awaitIdle(const std::string& container, std::chrono::milliseconds wait);

  // Ends a claim or a markBusy when it goes out of scope.
  struct Release {
    // A constructor, not an aggregate: make_shared<Release>(b, c) needs one
    // in clang 14, which lacks C++20's parenthesised aggregate init.
    Release(BusyContainers* b, std::string c) : busy(b), container(std::move(c)) {}
    BusyContainers* busy;
    std::string container;
    ~Release() { busy->markIdle(container); }
  };

 private:
  const std::string host_;
  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::map<std::string, int> busy_;  // only under mu_: every member function locks it
};

}  // namespace ferry::agent
