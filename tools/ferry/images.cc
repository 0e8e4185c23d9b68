// image import|ls: the images hosts keep, sent from this machine.
#include <iostream>
#include <map>

#include "common/error.h"
#include "common/names.h"
#include "protocol/capnp_text.h"
#include "tools/ferry/commands.h"
#include "tools/ferry/output.h"

namespace ferry::cli {

using nlohmann::json;
using proto::text;

namespace {

struct ImportOptions {
  std::string name, file, host;
  bool all = false;
};

int imageLs(Session& s) {
  auto r = s.call([](proto::Message::Builder m) { m.setListHosts(); });
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> where;
  for (auto h : r->root<proto::Message>().getHosts()) {
    for (auto im : h.getImages())
      where[{text(im.getName()), text(im.getId())}].push_back(text(h.getName()));
  }
  if (s.json_out) {
    json out = json::array();
    for (const auto& [k, hosts] : where)
      out.push_back({{"name", k.first}, {"id", k.second}, {"hosts", hosts}});
    printJson(out);
    return 0;
  }
  Table rows = {{"NAME", "ID", "HOSTS"}};
  for (const auto& [k, hosts] : where) {
    std::string hs;
    for (const auto& h : hosts) hs += (hs.empty() ? "" : ",") + h;
    rows.push_back({k.first, k.second.substr(0, 12), hs});
  }
  printTable(rows);
  return 0;
}

int imageImport(Session& s, const ImportOptions& o) {
  std::vector<std::string> hosts = o.all ? upHosts(s) : std::vector<std::string>{o.host};
  json out = json::array();
  for (const auto& h : hosts) {
    sendFile(
        s, o.file,
        [&](proto::Message::Builder m) {
          auto i = m.initImportFile();
          i.setHost(h);
          i.setKind(proto::Message::ImportFile::Kind::IMAGE);
          i.setName(o.name);
        },
        "image " + o.name + " for " + h);
    if (s.json_out)
      out.push_back({{"image", o.name}, {"host", h}});
    else
      std::printf("imported %s on %s\n", o.name.c_str(), h.c_str());
  }
  if (s.json_out) printJson(out);
  return 0;
}

}  // namespace

// A name the cluster would refuse, refused while parsing (exit 2).
void checkName(const std::string& name, const std::string& what) {
  try {
    validateName(name, what);
  } catch (const Error& e) {
    throw CLI::ValidationError(e.what());
  }
}

void addImageCommands(CLI::App& app, Invocation& inv) {
  CLI::App* image = app.add_subcommand("image", "images: import one, list them");
  image->require_subcommand(1);
  CLI::App* ls = image->add_subcommand("ls", "images, and the hosts that have them");
  setAction(ls, inv, [&inv] { return imageLs(inv.session); });

  auto o = std::make_shared<ImportOptions>();
  CLI::App* imp = image->add_subcommand(
      "import",
      "send an image file (rootfs tar, tar.gz, tar.zst, or an OCI layout tar) to a host, or to "
      "every host that is up");
  imp->add_option("name", o->name, "the image's name")->required();
  imp->add_option("file", o->file, "the image file")->required();
  imp->add_option("--host", o->host, "the host");
  imp->add_flag("--all", o->all, "every host that is up");
  setAction(
      imp, inv, [&inv, o] { return imageImport(inv.session, *o); },
      [o] {
        if (o->all == !o->host.empty())
          throw CLI::ValidationError("image import needs exactly one of --host H and --all");
        checkName(o->name, "image name");
      });
}

}  // namespace ferry::cli
