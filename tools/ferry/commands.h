// Each noun's commands, one file apiece, registered into the tree by
// buildApp(). A registration adds the subcommands and their options and,
// in the subcommand's callback, checks what options alone cannot say and
// sets inv.action.
#pragma once

#include <atomic>

#include "tools/ferry/app.h"

namespace ferry::cli {

// Set by SIGINT: `logs -f` ends at it.
extern std::atomic<bool> g_interrupted;

// Makes `sub` the chosen command once parsed: inv.command and inv.action.
// `check` first refuses what the options alone cannot (CLI::ValidationError:
// exit 2), so that parsing finds every usage error before anything runs.
void setAction(CLI::App* sub, Invocation& inv, std::function<int()> action,
               std::function<void()> check = {});

// validateName's refusal as a usage error.
void checkName(const std::string& name, const std::string& what);

void addContainerCommands(CLI::App& app, Invocation& inv);   // run stop rm ps logs
void addImageCommands(CLI::App& app, Invocation& inv);       // image import|ls
void addSecretCommands(CLI::App& app, Invocation& inv);      // secret create|ls|rm
void addMigrateCommand(CLI::App& app, Invocation& inv);      // migrate
void addPlacementCommands(CLI::App& app, Invocation& inv);   // cordon uncordon drain rebalance
void addHistoryCommands(CLI::App& app, Invocation& inv);     // history pending resume-source
void addClusterCommands(CLI::App& app, Invocation& inv);     // hosts, cluster up|down
void addKeysCommands(CLI::App& app, Invocation& inv);        // keys generate
void addCheckpointCommands(CLI::App& app, Invocation& inv);  // checkpoint restore

}  // namespace ferry::cli
