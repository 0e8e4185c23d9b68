#include "agent/busy_containers.h"

#include "common/error.h"

namespace ferry::agent {

void BusyContainers::markBusy(const std::string& container) {
  std::lock_guard<std::mutex> g(mu_);
  ++busy_[container];
}

void BusyContainers::claimForTransfer(const std::string& container) {
  std::lock_guard<std::mutex> g(mu_);
  if (busy_.count(container)) {
    throw Error(ErrorCategory::kRetryable, "a transfer of " + container +
                                               " is already in progress on " + host_ +
                                               "; try again when it has ended");
  }
  ++busy_[container];
}

void BusyContainers::markIdle(const std::string& container) {
  std::lock_guard<std::mutex> g(mu_);
  if (--busy_[container] <= 0) busy_.erase(container);
  idle_cv_.notify_all();
}

void BusyContainers::awaitIdle(const std::string& container, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> l(mu_);
  if (!idle_cv_.wait_for(l, wait, [&] { return busy_.count(container) == 0; })) {
    throw Error(ErrorCategory::kRetryable,
                "a transfer of " + container + " is still in progress on " + host_ + " after " +
                    std::to_string(wait.count() / 1000) + " s; try again later");
  }
}

}  // namespace ferry::agent
