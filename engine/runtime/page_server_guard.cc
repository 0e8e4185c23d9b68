#include "engine/runtime/page_server_guard.h"

#include <chrono>
#include <vector>

#include "common/error.h"

namespace ferry {

namespace {

constexpr std::chrono::milliseconds kNftTimeout{10'000};

std::string table() { return std::string("inet ") + kPageServerGuardTable; }

// Runs `nft COMMANDS` (one transaction); "" or what went wrong.
std::string nft(CommandRunner& runner, const std::string& commands) {
  RunOptions opts;
  opts.timeout = kNftTimeout;
  try {
    ProcessResult r = runner.run({"nft", commands}, opts);
    if (r.ok()) return "";
    std::string why = r.err.empty() ? r.out : r.err;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    return "nft " + r.describe() + (why.empty() ? "" : ": " + why);
  } catch (const std::exception& e) {
    return std::string("nft cannot run: ") + e.what();
  }
}

}  // namespace

std::string installPageServerGuard(CommandRunner& runner) {
  const std::string t = table();
  // "add" leaves what exists; the chain is flushed and its one rule added
  // again in the same transaction, so two agents never leave it twice.
  return nft(runner, "add table " + t + "; add set " + t +
                         " ports { type inet_service; flags timeout; }; add chain " + t +
                         " output { type filter hook output priority 0; policy accept; }; "
                         "flush chain " + t + " output; add rule " + t +
                         " output ip daddr 127.0.0.1 tcp dport @ports tcp flags & (syn | ack) == "
                         "syn meta skuid != 0 counter reject with tcp reset");
}

bool pageServerGuardInstalled(CommandRunner& runner) {
  return nft(runner, "list chain " + table() + " output").empty() &&
         nft(runner, "list set " + table() + " ports").empty();
}

PageServerPortGuard::PageServerPortGuard(CommandRunner& runner, uint16_t port)
    : runner_(runner), port_(port) {
  const std::string add = "add element " + table() + " ports { " + std::to_string(port_) +
                          " timeout " + std::to_string(kPageServerGuardTimeout.count()) + "s }";
  std::string why = nft(runner_, add);
  if (!why.empty() && installPageServerGuard(runner_).empty()) {
    // The table went (a firewall reload flushed the ruleset): made again.
    why = nft(runner_, add);
  }
  if (!why.empty()) {
    throw Error(ErrorCategory::kPermanent,
                "cannot keep CRIU's page server (127.0.0.1:" + std::to_string(port_) +
                    ") to root: " + why +
                    " (post-copy needs nftables; the agent makes its table at start: restart "
                    "it, or migrate without --postcopy)");
  }
}

PageServerPortGuard::~PageServerPortGuard() {
  nft(runner_, "delete element " + table() + " ports { " + std::to_string(port_) + " }");
}

}  // namespace ferry
