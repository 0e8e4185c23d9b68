#include "engine/store/container_store.h"

#include <algorithm>

#include "common/fs.h"
#include "common/names.h"
#include "common/error.h"
#include "common/fs.h"

namespace ferry {

using nlohmann::json;

void to_json(json& j, const ContainerRecord& r) {
  j = json{{"spec", r.spec},
           {"image_id", r.image_id},
           {"host", r.host},
           {"created_unix", r.created_unix},
           {"started_unix", r.started_unix},
           {"checkpointed", r.checkpointed},
           {"checkpoint_dir", r.checkpoint_dir},
           {"restored_from", r.restored_from},
           {"process_label", r.process_label},
           {"mount_label", r.mount_label},
           {"notify_ready", r.notify_ready},
           {"notify_status", r.notify_status}};
  if (!r.id_range.empty()) j["id_range"] = {{"host", r.id_range.host}, {"size", r.id_range.size}};
}

void from_json(const json& j, ContainerRecord& r) {
  j.at("spec").get_to(r.spec);
  j.at("image_id").get_to(r.image_id);
  r.host = j.value("host", "");
  r.created_unix = j.value("created_unix", int64_t{0});
  r.started_unix = j.value("started_unix", int64_t{0});
  r.checkpointed = j.value("checkpointed", false);
  r.checkpoint_dir = j.value("checkpoint_dir", "");
  r.restored_from = j.value("restored_from", "");
  r.process_label = j.value("process_label", "");
  r.mount_label = j.value("mount_label", "");
  r.notify_ready = j.value("notify_ready", false);
  r.notify_status = j.value("notify_status", "");
  if (j.contains("id_range")) {
    r.id_range = {j["id_range"].at("host").get<uint32_t>(), j["id_range"].at("size").get<uint32_t>()};
  }
}

ContainerStore::ContainerStore(fs::path dir) : dir_(std::move(dir)) { makeDirs(dir_, 0700); }

ContainerPaths ContainerStore::paths(const std::string& name) const {
  return ContainerPaths{dir_ / name};
}

std::optional<ContainerRecord> ContainerStore::find(const std::string& name) const {
  validateName(name, "container name");
  fs::path file = paths(name).record();
  // Gone (perhaps erased by another thread or process as a listing runs):
  // not there, not an error.
  std::optional<std::string> text = readFileIfExists(file);
  if (!text) return std::nullopt;
  try {
    return json::parse(*text).get<ContainerRecord>();
  } catch (const json::exception& e) {
    throw Error(ErrorCategory::kPermanent,
                "corrupt container record " + file.string() + ": " + e.what());
  }
}

ContainerRecord ContainerStore::get(const std::string& name, const std::string& host) const {
  auto r = find(name);
  if (!r) throw Error(ErrorCategory::kInvalidInput, "no container '" + name + "' on host " + host);
  return *r;
}

std::vector<ContainerRecord> ContainerStore::list() const {
  std::vector<ContainerRecord> out;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (!e.is_directory()) continue;
    std::string name = e.path().filename();
    try {
      validateName(name, "container name");
    } catch (const Error&) {
      continue;  // not a container directory (nothing of ours has such a name)
    }
    if (auto r = find(name)) out.push_back(std::move(*r));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  return out;
}

void ContainerStore::save(const ContainerRecord& r) {
  validateName(r.name(), "container name");
  makeDirs(paths(r.name()).dir, 0700);
  writeFileAtomic(paths(r.name()).record(), json(r).dump(2) + "\n", 0600);
}

void ContainerStore::erase(const std::string& name) {
  validateName(name, "container name");
  removeTree(paths(name).dir);
}

}  // namespace ferry
