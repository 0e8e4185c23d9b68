// ferry: the operator's command line. Talks to the coordinator over the
// control plane; files (images, checkpoint bundles) go straight between
// this process and the agent over a chunk stream, never through the
// coordinator. The commands are in tools/ferry/<noun>.cc; this only parses
// and runs the one chosen, turning errors into exit codes.
#include <signal.h>

#include <iostream>

#include "common/error.h"
#include "tools/cli_util.h"
#include "tools/ferry/app.h"
#include "tools/ferry/commands.h"
#include "tools/ferry/output.h"

using namespace ferry;
using namespace ferry::cli;

namespace {
void onSigint(int) { g_interrupted = true; }
}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = onSigint;
  ::sigaction(SIGINT, &sa, nullptr);
  Invocation inv;
  CLI::App app;
  buildApp(app, inv);
  if (auto code = parse(app, inv, std::vector<std::string>(argv + 1, argv + argc), std::cout,
                        std::cerr))
    return *code;
  inv.session.resolveDefaults();
  try {
    return inv.action();
  } catch (const UsageError& e) {
    // What only shows once the command runs (an empty secret file).
    std::cerr << "ferry: " << e.what() << "\n(see ferry " << inv.command << " --help)\n";
    return 2;
  } catch (const Error& e) {
    if (inv.session.json_out) {
      printJson({{"error", e.what()}, {"category", std::string(categoryName(e.category()))}});
    }
    std::cerr << "ferry: " << inv.command << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ferry: " << e.what() << "\n";
    return 1;
  }
}
