// hosts, cluster up|down: the cluster's hosts, and a local cluster on this
// machine (tools/cluster.h).
#include <iostream>

#include "protocol/capnp_text.h"
#include "tools/cli_util.h"
#include "tools/cluster.h"
#include "tools/ferry/commands.h"
#include "tools/ferry/options.h"
#include "tools/ferry/output.h"

namespace ferry::cli {

using nlohmann::json;
using proto::text;

namespace {

int hosts(Session& s) {
  auto r = s.call([](proto::Message::Builder m) { m.setListHosts(); });
  auto hosts = r->root<proto::Message>().getHosts();
  if (s.json_out) {
    json out = json::array();
    for (auto h : hosts) out.push_back(hostJson(h));
    printJson(out);
    return 0;
  }
  Table rows = {
      {"NAME", "STATUS", "CONTAINERS", "CPUS", "CPU", "MEMORY", "KERNEL", "CRIU", "POST-COPY",
       "DATA PLANE", "NETWORK"}};
  std::vector<std::string> network_errors;
  for (auto h : hosts) {
    std::string network = text(h.getNetwork());
    if (h.getNetworkError().size() > 0) {
      network = "none (see below)";
      network_errors.push_back(text(h.getName()) + ": no container network: " +
                               text(h.getNetworkError()));
    }
    std::string status = h.getUp() ? "up" : "down";
    if (h.getCordoned()) status += ",cordoned";
    auto i = h.getInfo();
    auto l = h.getLoad();
    std::string postcopy = "yes";
    if (i.getPostcopyUnavailable().size() > 0) {
      postcopy = "no (see below)";
      network_errors.push_back(text(h.getName()) + ": no post-copy: " +
                               text(i.getPostcopyUnavailable()));
    }
    char cpu[16];
    std::snprintf(cpu, sizeof cpu, "%.0f%%", static_cast<double>(l.getCpuPercent()));
    rows.push_back({text(h.getName()), status, std::to_string(h.getContainers()),
                    std::to_string(i.getCpus()), cpu,
                    formatBytes(l.getMemoryUsedBytes()) + " / " + formatBytes(i.getMemoryBytes()),
                    text(i.getKernel()), text(i.getCriuVersion()), postcopy, text(h.getDataEndpoint()),
                    network.empty() ? "-" : network});
  }
  printTable(rows);
  for (const auto& e : network_errors) std::fprintf(stderr, "%s\n", e.c_str());
  return 0;
}

// Progress of up and down goes to stderr, except under --json.
std::function<void(const std::string&)> chatter(const Session& s) {
  bool chatty = !s.json_out;
  return [chatty](const std::string& line) {
    if (chatty) std::fprintf(stderr, "%s\n", line.c_str());
  };
}

int up(Session& s, const cluster::ClusterOptions& o) {
  cluster::ClusterState st = cluster::up(o, chatter(s));
  if (s.json_out) {
    printJson(json(st));
    return 0;
  }
  std::printf("cluster up: coordinator %s, hosts", st.coordinator_endpoint.c_str());
  for (const auto& h : st.hosts) std::printf(" %s (%s)", h.name.c_str(), h.address.c_str());
  if (!st.coordinator_metrics_url.empty()) {
    std::printf("\nmetrics: coordinator %s; agents' in %s/cluster.json (--json)",
                st.coordinator_metrics_url.c_str(), st.dir.c_str());
  }
  if (st.network.enabled()) {
    const auto& link = st.network.link;
    std::printf("\ncluster network %s, routed here via hostA (%s); hosts in namespaces",
                st.network.cidr.c_str(), st.network.via.c_str());
    for (const auto& n : link.nodes) std::printf(" %s", n.netns.c_str());
    std::printf(" on bridge %s (%s, this machine %s)", link.bridge.c_str(),
                toString(link.cidr()).c_str(), link.bridgeAddress().c_str());
  }
  std::printf("\nstate and logs in %s; stop it with `ferry cluster down%s`\n", st.dir.c_str(),
              o.dir == cluster::ClusterOptions{}.dir ? "" : (" --dir " + st.dir.string()).c_str());
  return 0;
}

int down(Session& s, const std::filesystem::path& dir) {
  cluster::DownReport r = cluster::down(dir, chatter(s));
  if (s.json_out) {
    printJson({{"processes_stopped", r.processes_stopped},
               {"containers_removed", r.containers_removed},
               {"problems", r.problems}});
    return 0;
  }
  std::printf("cluster down: %d processes stopped, %d containers removed\n", r.processes_stopped,
              r.containers_removed);
  for (const auto& p : r.problems) std::fprintf(stderr, "warning: %s\n", p.c_str());
  return 0;
}

void addUp(CLI::App* cluster, Invocation& inv) {
  auto o = std::make_shared<cluster::ClusterOptions>();
  auto wait = std::make_shared<std::chrono::milliseconds>(o->wait);
  CLI::App* u = cluster->add_subcommand(
      "up",
      "a coordinator and N agents hostA, hostB, ... (data plane on 127.0.0.2, 127.0.0.3, ..., "
      "or with --network each in a network namespace of its own); "
      "the coordinator on a unix socket for root only, or with --keys on 127.0.0.1:P; state and "
      "logs in DIR (kept by down, so images stay)");
  u->add_option("--hosts", o->hosts, "N agents (default 2)")->check(countIn(1, 20));
  u->add_option("--dir", o->dir, "state and logs (default /var/lib/ferry/cluster)");
  u->add_option("--port", o->port, "with --keys, the coordinator's port P (default 7000)")
      ->check(countIn(1, 65535));
  addDuration(u, "--wait", *wait, std::chrono::seconds(1),
              "how long to wait for every agent (default 30s; a bare number is seconds)");
  u->add_option("--bin-dir", o->bin_dir,
                "where ferry-agent and ferry-coordinator are (default: next to ferry, then PATH)");
  u->add_option("--keys", o->keys_dir,
                "CurveZMQ on everywhere, with keys from `ferry keys generate K --hosts "
                "hostA,...` (the CLI then finds them itself)");
  u->add_option("--network", o->network_cidr,
                "CIDR: a container network (e.g. 10.66.0.0/16, clear of this machine's routes): "
                "each host gets a network namespace of its own on a bridge, with an address of a "
                "free 10.212.N.0/24; the coordinator listens on the bridge's address with keys "
                "(--keys, else made in DIR/keys); this machine routes CIDR via hostA, so it "
                "reaches every host and container; down removes all of it")
      ->type_name("CIDR");
  // An argument for the daemons may itself start with '-' (--memory-capacity):
  // parse() glues each to its option as --agent-arg=ARG.
  u->add_option("--agent-arg", o->agent_args,
                "goes to every ferry-agent, e.g. --agent-arg --memory-capacity --agent-arg 1024; "
                "repeatable")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  u->add_flag("!--no-metrics", o->metrics,
              "no Prometheus metrics (default: the coordinator and every agent serve /metrics "
              "on a free port; the URLs are printed and kept in DIR/cluster.json)");
  u->add_option("--coordinator-arg", o->coordinator_args,
                "goes to ferry-coordinator likewise, e.g. --coordinator-arg --rebalance-every "
                "--coordinator-arg 60; repeatable")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  setAction(u, inv, [&inv, o, wait] {
    o->wait = std::chrono::ceil<decltype(o->wait)>(*wait);
    return up(inv.session, *o);
  });
}

}  // namespace

void addClusterCommands(CLI::App& app, Invocation& inv) {
  CLI::App* h = app.add_subcommand("hosts", "hosts, up or down, with their capacity");
  setAction(h, inv, [&inv] { return hosts(inv.session); });

  CLI::App* cluster = app.add_subcommand("cluster", "a local cluster on this machine: up, down");
  cluster->require_subcommand(1);
  addUp(cluster, inv);
  auto dir = std::make_shared<std::filesystem::path>(cluster::ClusterOptions{}.dir);
  CLI::App* d = cluster->add_subcommand(
      "down", "stop the local cluster; no container, mount or process stays");
  d->add_option("--dir", *dir, "its state (default /var/lib/ferry/cluster)");
  setAction(d, inv, [&inv, dir] { return down(inv.session, *dir); });
}

}  // namespace ferry::cli
