// keys generate: CurveZMQ key pairs for a cluster; keys add: pairs for
// hosts and clients that join it later.

#include <filesystem>
#include <iostream>

#include "common/error.h"
#include "common/fs.h"
#include "common/names.h"
#include "common/strings.h"
#include "protocol/curve.h"
#include "tools/ferry/commands.h"
#include "tools/ferry/output.h"

namespace ferry::cli {

using nlohmann::json;

namespace {

struct KeysOptions {
  std::string dir;
  std::vector<std::string> hosts = {"hostA", "hostB"}, clients = {"client"};
};

// "a,b,,c" -> a, b, c.
std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out = splitFields(s, ',');
  std::erase(out, std::string());
  return out;
}

// The hosts' and clients' names, checked (a client's key gives a client's
// rights, a host's a host's: the names say which).
void checkNames(const KeysOptions& o) {
  for (const auto& n : o.clients) {
    if (!proto::isClientKeyName(n)) {
      throw Error(ErrorCategory::kInvalidInput,
                  "client key '" + n +
                      "': a client's key is named client or client-NAME (the "
                      "coordinator gives other names' keys a host's rights, not a client's)");
    }
  }
  for (const auto& n : o.hosts) {
    if (proto::isClientKeyName(n) || n == "coordinator") {
      throw Error(ErrorCategory::kInvalidInput,
                  "host key '" + n + "': client, client-* and coordinator are not host names");
    }
  }
  for (const auto& n : o.hosts) validateName(n, "key name");
  for (const auto& n : o.clients) validateName(n, "key name");
}

int generate(Session& s, const KeysOptions& o) {
  std::vector<std::string> names = {"coordinator"};
  names.insert(names.end(), o.hosts.begin(), o.hosts.end());
  names.insert(names.end(), o.clients.begin(), o.clients.end());
  checkNames(o);
  for (const auto& n : names) {
    if (pathExists(std::filesystem::path(o.dir) / (n + ".key"))) {
      throw Error(ErrorCategory::kInvalidInput,
                  std::filesystem::path(o.dir).string() + "/" + n +
                      ".key exists; keys are never overwritten (remove it first)");
    }
  }
  // writeKeyPair makes the directory (0700) and refuses a symlink there.
  json out = json::array();
  for (const auto& n : names) {
    proto::KeyPair k = proto::generateKeyPair();
    proto::writeKeyPair(o.dir, n, k);
    out.push_back({{"name", n}, {"public_key", k.public_key}});
  }
  if (s.json_out) {
    printJson(out);
    return 0;
  }
  const char* dir = o.dir.c_str();
  std::printf("generated %zu key pairs in %s: ", names.size(), dir);
  for (size_t i = 0; i < names.size(); ++i) std::printf("%s%s", i ? ", " : "", names[i].c_str());
  std::printf(
      "\n  ferry-coordinator --keys %s   admits NAME.pub as host NAME's agent, client.pub and "
      "client-*.pub as CLIs\n",
      dir);
  std::printf("  ferry-agent --name H --keys %s   uses H.key and coordinator.pub\n", dir);
  std::printf("  ferry --keys %s ...              uses client.key and coordinator.pub\n", dir);
  return 0;
}

// Pairs for the names in `o` that have none in the directory yet; the
// others are kept as they are. Idempotent: what a configuration tool runs
// each time with every host it knows.
int add(Session& s, const KeysOptions& o) {
  namespace fs = std::filesystem;
  checkNames(o);
  if (!pathExists(fs::path(o.dir) / "coordinator.key")) {
    throw Error(ErrorCategory::kInvalidInput, "no cluster keys in " + o.dir +
                                                  " (no coordinator.key): generate them first with "
                                                  "`ferry keys generate " +
                                                  o.dir + "`");
  }
  std::vector<std::string> names = o.hosts;
  names.insert(names.end(), o.clients.begin(), o.clients.end());
  // A half pair (a crash between the two writes, a file removed by hand)
  // is refused before anything is written, naming what to remove.
  for (const auto& n : names) {
    fs::path key = fs::path(o.dir) / (n + ".key"), pub = fs::path(o.dir) / (n + ".pub");
    if (pathExists(key) != pathExists(pub)) {
      throw Error(ErrorCategory::kInvalidInput,
                  "half a key pair for " + n + ": " + (pathExists(key) ? key : pub).string() +
                      " without " + (pathExists(key) ? pub : key).string() +
                      "; remove it and run this again (a new pair is made)");
    }
  }
  json added = json::array(), kept = json::array();
  for (const auto& n : names) {
    if (pathExists(fs::path(o.dir) / (n + ".key"))) {
      kept.push_back(n);
      continue;
    }
    proto::KeyPair k = proto::generateKeyPair();
    proto::writeKeyPair(o.dir, n, k);
    added.push_back({{"name", n}, {"public_key", k.public_key}});
  }
  if (s.json_out) {
    printJson({{"added", added}, {"kept", kept}});
    return 0;
  }
  std::printf("added %zu key pairs in %s", added.size(), o.dir.c_str());
  for (size_t i = 0; i < added.size(); ++i) {
    std::printf("%s%s", i ? ", " : ": ", added[i]["name"].get<std::string>().c_str());
  }
  std::printf("; %zu already had one\n", kept.size());
  if (!added.empty()) {
    std::printf(
        "  the coordinator admits a new NAME.pub once it is in its --keys directory and "
        "it is restarted\n");
  }
  return 0;
}

// `sub`'s --hosts and --clients, into `o`.
void addNameLists(CLI::App* sub, const std::shared_ptr<KeysOptions>& o,
                  const std::string& hosts_help, const std::string& clients_help) {
  sub->add_option_function<std::string>(
         "--hosts", [o](const std::string& v) { o->hosts = splitList(v); }, hosts_help)
      ->type_name("LIST");
  sub->add_option_function<std::string>(
         "--clients", [o](const std::string& v) { o->clients = splitList(v); }, clients_help)
      ->type_name("LIST");
}

}  // namespace

void addKeysCommands(CLI::App& app, Invocation& inv) {
  CLI::App* keys = app.add_subcommand("keys", "CurveZMQ keys: generate, add");
  keys->require_subcommand(1);
  auto o = std::make_shared<KeysOptions>();
  CLI::App* g = keys->add_subcommand(
      "generate", "CurveZMQ key pairs in DIR: coordinator, each host and each client");
  g->add_option("dir", o->dir, "where they go")->required();
  addNameLists(g, o, "H1,H2,...: the hosts (default hostA,hostB)",
               "client,client-NAME,...: the clients (default client)");
  setAction(g, inv, [&inv, o] { return generate(inv.session, *o); });

  auto a_opts = std::make_shared<KeysOptions>();
  a_opts->hosts.clear();
  a_opts->clients.clear();
  CLI::App* a = keys->add_subcommand(
      "add",
      "key pairs in DIR for hosts and clients that have none yet (a cluster's keys "
      "exist: coordinator.key); those that have one are kept");
  a->add_option("dir", a_opts->dir, "the cluster's keys")->required();
  addNameLists(a, a_opts, "H1,H2,...: hosts", "client-NAME,...: clients");
  setAction(a, inv, [&inv, a_opts] { return add(inv.session, *a_opts); });
}

}  // namespace ferry::cli
