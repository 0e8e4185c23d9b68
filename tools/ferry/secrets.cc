// secret create|ls|rm: host secrets. A value goes from FILE (or stdin) to
// each host's store; nothing prints it back.
#include <iostream>
#include <iterator>

#include "common/error.h"
#include "common/fs.h"
#include "engine/store/secret_store.h"
#include "protocol/capnp_text.h"
#include "tools/cli_util.h"
#include "tools/ferry/commands.h"
#include "tools/ferry/output.h"

namespace ferry::cli {

using nlohmann::json;
using proto::text;
using Op = proto::Message::Secret::Op;

namespace {

struct SecretOptions {
  std::string name, file, host;
  bool all = false, replace = false;
};

int secretLs(Session& s, const std::string& host) {
  std::vector<std::string> hosts = host.empty() ? upHosts(s) : std::vector<std::string>{host};
  json out = json::array();
  Table rows = {{"NAME", "HOST", "BYTES", "CREATED", "USED BY"}};
  for (const auto& h : hosts) {
    auto r = s.call([&](proto::Message::Builder m) {
      auto sec = m.initSecret();
      sec.setHost(h);
      sec.setOp(Op::LIST);
    });
    for (auto e : r->root<proto::Message>().getSecrets()) {
      std::vector<std::string> users;
      for (auto u : e.getUsedBy()) users.push_back(text(u));
      out.push_back({{"name", text(e.getName())}, {"host", h}, {"bytes", e.getBytes()},
                     {"created_unix", e.getCreatedUnix()}, {"used_by", users}});
      std::string used;
      for (const auto& u : users) used += (used.empty() ? "" : ",") + u;
      rows.push_back({text(e.getName()), h, std::to_string(e.getBytes()),
                      utcTime(e.getCreatedUnix()), used.empty() ? "-" : used});
    }
  }
  if (s.json_out)
    printJson(out);
  else
    printTable(rows);
  return 0;
}

// The value of `secret create`: FILE's bytes, or stdin's for "-".
std::string secretValue(const SecretOptions& o) {
  std::string value;
  if (o.file == "-")
    value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  else
    value = readFile(o.file);
  if (value.empty()) throw UsageError("secret " + o.name + ": " + o.file + " is empty");
  if (value.size() > kMaxSecretBytes) {
    throw UsageError("secret " + o.name + ": " + std::to_string(value.size()) +
                     " bytes; at most " + std::to_string(kMaxSecretBytes));
  }
  return value;
}

int secretChange(Session& s, const SecretOptions& o, bool create) {
  std::string value = create ? secretValue(o) : std::string();
  std::vector<std::string> hosts = o.all ? upHosts(s) : std::vector<std::string>{o.host};
  json out = json::array();
  for (const auto& h : hosts) {
    s.call([&](proto::Message::Builder m) {
      auto sec = m.initSecret();
      sec.setHost(h);
      sec.setName(o.name);
      sec.setOp(create ? Op::CREATE : Op::REMOVE);
      sec.setReplace(o.replace);
      if (create)
        sec.setValue(kj::arrayPtr(reinterpret_cast<const kj::byte*>(value.data()), value.size()));
    });
    if (s.json_out)
      out.push_back({{"secret", o.name}, {"host", h}, {"done", create ? "created" : "removed"}});
    else
      std::printf("secret %s %s on %s\n", o.name.c_str(), create ? "stored" : "removed",
                  h.c_str());
  }
  if (s.json_out) printJson(out);
  return 0;
}

void addChange(CLI::App* secret, Invocation& inv, bool create) {
  auto o = std::make_shared<SecretOptions>();
  CLI::App* sub =
      create ? secret->add_subcommand(
                   "create",
                   "store FILE's bytes (- : stdin; at most 512000) as secret NAME in a host's "
                   "secrets store (root-only files there), or on every host that is up. Values "
                   "are never printed or logged")
             : secret->add_subcommand(
                   "rm", "remove a secret (refused while a container there has it)");
  sub->add_option("name", o->name, "the secret")->required();
  if (create) {
    sub->add_option("file", o->file, "where its value is (-: stdin)")->required();
    sub->add_flag("--replace", o->replace,
                  "give an existing one a new value (containers get it when next started or "
                  "restored)");
  }
  sub->add_option("--host", o->host, "the host");
  sub->add_flag("--all", o->all, "every host that is up");
  std::string verb = create ? "create" : "rm";
  setAction(
      sub, inv, [&inv, o, create] { return secretChange(inv.session, *o, create); },
      [o, verb] {
        checkName(o->name, "secret name");
        if (o->all == !o->host.empty())
          throw CLI::ValidationError("secret " + verb + " needs exactly one of --host H and --all");
      });
}

}  // namespace

void addSecretCommands(CLI::App& app, Invocation& inv) {
  CLI::App* secret = app.add_subcommand("secret", "host secrets: create, ls, rm");
  secret->require_subcommand(1);
  addChange(secret, inv, true);
  auto host = std::make_shared<std::string>();
  CLI::App* ls = secret->add_subcommand(
      "ls", "secrets by name, size, time and the containers given them, on a host or every "
            "host that is up");
  ls->add_option("--host", *host, "only this host's");
  setAction(ls, inv, [&inv, host] { return secretLs(inv.session, *host); });
  addChange(secret, inv, false);
}

}  // namespace ferry::cli
