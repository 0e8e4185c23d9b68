// The options of `run` as a user writes them -- the same for `ferry run`
// and `ferry-engine run`, and what the control protocol carries between
// them and an agent -- and the one place they become a ContainerSpec.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/spec/oci_spec.h"

namespace ferry {

struct RunArgs {
  std::string name;
  std::string image;
  std::vector<std::string> args;         // the command; empty: the image's
  std::vector<std::string> env;          // -e KEY=VALUE
  std::vector<std::string> volumes;      // -v NAME:/PATH[:OPTS]
  std::string cwd;                       // -w
  std::string user;                      // -u
  std::string hostname;                  // --hostname
  std::vector<std::string> group_add;    // --group-add
  std::vector<std::string> host_users;   // --hostuser
  std::string umask;                     // --umask
  bool no_create_workdir = false;        // --no-create-workdir
  std::vector<std::string> tmpfs;        // --tmpfs DEST[:OPTS]
  std::vector<std::string> annotations;  // --annotation K=V
  std::string stop_signal;               // --stop-signal
  std::vector<std::string> label_opts;   // --security-opt label=X: the X
  std::vector<std::string> secrets;      // --secret NAME,type=env[,target=VAR]
  std::string sdnotify;                  // --sdnotify
  std::string userns;                    // --userns auto|host ("": auto)
  std::string network;                   // --network ferry|none ("": ferry where there is one)
  std::string ip;                        // --ip A.B.C.D (the coordinator's choice when empty)
  std::vector<std::string> publish;      // -p HOSTPORT:PORT[/tcp|udp]
  // Filled by the coordinator with the address it gives: its MAC and the
  // cluster network it is on (ip then holds the address).
  std::string mac;
  std::string cidr;
};

// The one cluster network's name for --network.
inline constexpr const char* kClusterNetworkName = "ferry";

// Takes the run option `opt` into `r`, calling `value(what)` for its value
// when it has one (--sdnotify=X carries its own). Returns false when `opt`
// is not a run option (--name is one). Throws Error kInvalidInput for a
// --security-opt other than label=.
bool takeRunOption(const std::string& opt, const std::function<std::string(const std::string& what)>& value,
                   RunArgs& r);

// `run`'s words after the CLI's own options, in order: RUN OPTIONS (as
// takeRunOption; --opt=value as --opt value), IMAGE, then the container's
// command, which is never read as options. Throws Error kInvalidInput for
// an unknown option, a missing value, no --name or IMAGE, a bad name, or
// -e without '='.
RunArgs runArgsFromWords(std::vector<std::string> words);

// What the options ask for, each value parsed and checked: volume and tmpfs
// options, annotations, the stop signal, the umask, labels, secrets,
// --sdnotify and -e. Throws Error kInvalidInput naming the bad value.
ContainerSpec specFromRunArgs(const RunArgs& r);

// --network, --ip and -p on their own (what the coordinator checks before it
// gives an address): a known network, a well-formed address, ports parsed
// and none published twice. Throws Error kInvalidInput.
void checkNetworkArgs(const RunArgs& r);

// The options' description for both CLIs' --help (indented 6 spaces).
extern const char* const kRunOptionsHelp;

}  // namespace ferry
