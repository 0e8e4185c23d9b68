#include "protocol/convert/run_args_proto.h"

#include "protocol/capnp_text.h"

namespace ferry::proto {

namespace {

template <typename List>
void fill(List list, const std::vector<std::string>& v) {
  for (size_t i = 0; i < v.size(); ++i) list.set(static_cast<unsigned>(i), v[i]);
}


}  // namespace

void fillRunSpec(RunSpec::Builder s, const ferry::RunArgs& r) {
  s.setName(r.name);
  s.setImage(r.image);
  s.setCwd(r.cwd);
  s.setUser(r.user);
  s.setHostname(r.hostname);
  s.setUmask(r.umask);
  s.setNoCreateWorkdir(r.no_create_workdir);
  s.setStopSignal(r.stop_signal);
  s.setSdnotify(r.sdnotify);
  s.setUserns(r.userns);
  s.setNetwork(r.network);
  s.setIp(r.ip);
  s.setMac(r.mac);
  s.setCidr(r.cidr);
  fill(s.initPublish(static_cast<unsigned>(r.publish.size())), r.publish);
  fill(s.initArgs(static_cast<unsigned>(r.args.size())), r.args);
  fill(s.initEnv(static_cast<unsigned>(r.env.size())), r.env);
  fill(s.initVolumes(static_cast<unsigned>(r.volumes.size())), r.volumes);
  fill(s.initGroupAdd(static_cast<unsigned>(r.group_add.size())), r.group_add);
  fill(s.initHostUsers(static_cast<unsigned>(r.host_users.size())), r.host_users);
  fill(s.initTmpfs(static_cast<unsigned>(r.tmpfs.size())), r.tmpfs);
  fill(s.initAnnotations(static_cast<unsigned>(r.annotations.size())), r.annotations);
  fill(s.initLabelOpts(static_cast<unsigned>(r.label_opts.size())), r.label_opts);
  fill(s.initSecrets(static_cast<unsigned>(r.secrets.size())), r.secrets);
}

ferry::RunArgs runArgsFrom(RunSpec::Reader s) {
  ferry::RunArgs r;
  r.name = text(s.getName());
  r.image = text(s.getImage());
  r.cwd = text(s.getCwd());
  r.user = text(s.getUser());
  r.hostname = text(s.getHostname());
  r.umask = text(s.getUmask());
  r.no_create_workdir = s.getNoCreateWorkdir();
  r.stop_signal = text(s.getStopSignal());
  r.sdnotify = text(s.getSdnotify());
  r.userns = text(s.getUserns());
  r.network = text(s.getNetwork());
  r.ip = text(s.getIp());
  r.mac = text(s.getMac());
  r.cidr = text(s.getCidr());
  r.publish = strings(s.getPublish());
  r.args = strings(s.getArgs());
  r.env = strings(s.getEnv());
  r.volumes = strings(s.getVolumes());
  r.group_add = strings(s.getGroupAdd());
  r.host_users = strings(s.getHostUsers());
  r.tmpfs = strings(s.getTmpfs());
  r.annotations = strings(s.getAnnotations());
  r.label_opts = strings(s.getLabelOpts());
  r.secrets = strings(s.getSecrets());
  return r;
}

}  // namespace ferry::proto
