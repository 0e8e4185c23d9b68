#include "engine/spec/oci_spec.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"

namespace ferry {

using nlohmann::json;

namespace {

SpecHostInputs hostInputs(size_t volumes = 0) {
  SpecHostInputs h;
  h.rootfs = "/var/lib/ferry/hostA/containers/web/rootfs";
  h.cgroups_path = "/ferry/hostA/web";
  h.host_name = "hostA";
  for (size_t i = 0; i < volumes; ++i) h.volume_sources.push_back("/vol/" + std::to_string(i));
  return h;
}

const json* findMount(const json& spec, const std::string& dest) {
  for (const auto& m : spec["mounts"]) {
    if (m["destination"] == dest) return &m;
  }
  return nullptr;
}

}  // namespace

TEST(OciSpec, UsesRequestOverImageDefaults) {
  ContainerSpec s{.name = "web", .image = "img", .args = {"/bin/app", "-x"}, .env = {"A=1", "PATH=/x"},
                  .cwd = "/srv", .user = "1000:1001"};
  ImageConfig img{.env = {"A=0", "B=2"}, .cmd = {"/bin/sh"}, .workdir = "/img", .user = "5"};
  json spec = generateOciSpec(s, img, hostInputs());
  EXPECT_EQ(spec["process"]["args"], json({"/bin/app", "-x"}));
  EXPECT_EQ(spec["process"]["cwd"], "/srv");
  EXPECT_EQ(spec["process"]["user"]["uid"], 1000);
  EXPECT_EQ(spec["process"]["user"]["gid"], 1001);
  EXPECT_EQ(spec["process"]["env"], json({"B=2", "A=1", "PATH=/x"}));
  EXPECT_EQ(spec["hostname"], "web");
  EXPECT_EQ(spec["root"]["path"], "/var/lib/ferry/hostA/containers/web/rootfs");
  EXPECT_EQ(spec["linux"]["cgroupsPath"], "/ferry/hostA/web");
}

TEST(OciSpec, FallsBackToImageEntrypointCmdWorkdirUser) {
  ContainerSpec s{.name = "web", .image = "img"};
  ImageConfig img{.env = {}, .entrypoint = {"/entry"}, .cmd = {"arg"}, .workdir = "/w", .user = "7"};
  json spec = generateOciSpec(s, img, hostInputs());
  EXPECT_EQ(spec["process"]["args"], json({"/entry", "arg"}));
  EXPECT_EQ(spec["process"]["cwd"], "/w");
  EXPECT_EQ(spec["process"]["user"]["uid"], 7);
  EXPECT_EQ(spec["process"]["user"]["gid"], 7);
  // A PATH is always there.
  EXPECT_EQ(spec["process"]["env"][0].get<std::string>().rfind("PATH=", 0), 0u);
}

TEST(OciSpec, AResolvedIdentityGivesGroupsHomeUmaskAndWorkdir) {
  SpecHostInputs host = hostInputs();
  host.identity = Identity{.uid = 1000, .gid = 1000, .additional_gids = {29, 50}, .home = "/home/app"};
  host.workdir = "/srv/app/work";
  ContainerSpec s{.name = "c", .image = "i", .args = {"x"}, .cwd = "/opt/applink/work",
                  .user = "app", .umask = "027"};
  json spec = generateOciSpec(s, {}, host);
  EXPECT_EQ(spec["process"]["user"]["uid"], 1000);
  EXPECT_EQ(spec["process"]["user"]["additionalGids"], json({29, 50}));
  EXPECT_EQ(spec["process"]["user"]["umask"], 027);
  EXPECT_EQ(spec["process"]["cwd"], "/srv/app/work");
  EXPECT_EQ(spec["process"]["env"].back(), "HOME=/home/app");
  // HOME given by the caller (or the image) stays.
  s.env = {"HOME=/elsewhere"};
  json mine = generateOciSpec(s, {}, host);
  int homes = 0;
  for (const auto& e : mine["process"]["env"]) homes += e.get<std::string>().rfind("HOME=", 0) == 0;
  EXPECT_EQ(homes, 1);
  EXPECT_EQ(mine["process"]["env"].back(), "HOME=/elsewhere");
  // No umask asked: none set (runc's default).
  s.umask = "";
  EXPECT_FALSE(generateOciSpec(s, {}, host)["process"]["user"].contains("umask"));
}

TEST(OciSpec, NewSpecFieldsRoundTripThroughJson) {
  ContainerSpec s{.name = "c", .image = "i", .group_add = {"staff", "29"}, .host_users = {"ops"},
                  .umask = "027", .create_workdir = false};
  ContainerSpec back = json(s).get<ContainerSpec>();
  EXPECT_EQ(back.group_add, s.group_add);
  EXPECT_EQ(back.host_users, s.host_users);
  EXPECT_EQ(back.umask, "027");
  EXPECT_FALSE(back.create_workdir);
  EXPECT_EQ(back.userns, "auto");
  // A record written before these fields existed reads with the defaults,
  // and as running on the host's ids, as its container does.
  ContainerSpec old = json{{"name", "c"}, {"image", "i"}}.get<ContainerSpec>();
  EXPECT_TRUE(old.create_workdir);
  EXPECT_TRUE(old.group_add.empty());
  EXPECT_EQ(old.userns, "host");
  EXPECT_TRUE(old.network.empty());
  // A container's place on the network goes with its record.
  ContainerSpec web{.name = "web", .image = "i"};
  web.network = {"10.66.0.7", "02:66:0a:42:00:07", "10.66.0.0/16", {"8080:80/tcp"}};
  EXPECT_EQ(json(web).get<ContainerSpec>().network, web.network);
  EXPECT_FALSE(json(s).contains("network"));
}

TEST(OciSpec, ARangeOfHostIdsGivesAUserNamespaceWithItsMappings) {
  SpecHostInputs h = hostInputs();
  h.id_range = {1u << 20, 65536};
  json spec = generateOciSpec({.name = "c", .image = "i", .args = {"x"}}, {}, h);
  std::vector<std::string> ns;
  for (const auto& n : spec["linux"]["namespaces"]) ns.push_back(n["type"]);
  EXPECT_NE(std::find(ns.begin(), ns.end(), "user"), ns.end());
  json want = json::array({{{"containerID", 0}, {"hostID", 1u << 20}, {"size", 65536}}});
  EXPECT_EQ(spec["linux"]["uidMappings"], want);
  EXPECT_EQ(spec["linux"]["gidMappings"], want);
  // Without one: no user namespace, no mappings.
  json plain = generateOciSpec({.name = "c", .image = "i", .args = {"x"}}, {}, hostInputs());
  EXPECT_FALSE(plain["linux"].contains("uidMappings"));
  for (const auto& n : plain["linux"]["namespaces"]) EXPECT_NE(n["type"], "user");
}

TEST(OciSpec, ACgroupNamespaceOnCgroupV2HostsOnly) {
  // On v2 its own cgroup namespace, so runc mounts a cgroup2 of its own at
  // /sys/fs/cgroup (CRIU can dump and mount it again), not a bind of the
  // host's, which under systemd is a slave CRIU refuses to dump.
  auto types = [](const json& spec) {
    std::vector<std::string> ns;
    for (const auto& n : spec["linux"]["namespaces"]) ns.push_back(n["type"]);
    return ns;
  };
  for (bool userns : {false, true}) {
    SpecHostInputs h = hostInputs();
    if (userns) h.id_range = {1u << 20, 65536};
    h.cgroup_version = 2;
    std::vector<std::string> v2 = types(generateOciSpec({.name = "c", .image = "i", .args = {"x"}}, {}, h));
    EXPECT_EQ(std::count(v2.begin(), v2.end(), "cgroup"), 1) << "userns " << userns;
    // v1 (hybrid or not) and unknown: as before, no cgroup namespace.
    for (int version : {0, 1}) {
      h.cgroup_version = version;
      std::vector<std::string> v1 = types(generateOciSpec({.name = "c", .image = "i", .args = {"x"}}, {}, h));
      EXPECT_EQ(std::count(v1.begin(), v1.end(), "cgroup"), 0) << "v" << version << " userns " << userns;
    }
  }
}

TEST(OciSpec, TheHostsNetworkNamespaceIsJoinedByPathWithItsCriuOptions) {
  SpecHostInputs h = hostInputs();
  h.netns_path = "/run/netns/ferry-abc123-web";
  h.criu_config = "/var/lib/ferry/containers/web/criu.conf";
  json spec = generateOciSpec({.name = "web", .image = "i", .args = {"x"}}, {}, h);
  json net;
  for (const auto& n : spec["linux"]["namespaces"]) {
    if (n["type"] == "network") net = n;
  }
  EXPECT_EQ(net["path"], "/run/netns/ferry-abc123-web");
  EXPECT_EQ(spec["annotations"]["org.criu.config"], "/var/lib/ferry/containers/web/criu.conf");
  EXPECT_EQ((*findMount(spec, "/sys"))["type"], "sysfs");  // the host's user namespace: its own
  // In a user namespace of its own, sysfs cannot be mounted for a network
  // namespace the host made: the host's /sys, read-only, instead.
  h.id_range = {1u << 20, 65536};
  json userns = generateOciSpec({.name = "web", .image = "i", .args = {"x"}}, {}, h);
  const json& sys = *findMount(userns, "/sys");
  EXPECT_EQ(sys["type"], "bind");
  EXPECT_EQ(sys["source"], "/sys");
  EXPECT_NE(std::find(sys["options"].begin(), sys["options"].end(), "ro"), sys["options"].end());
  // Without a network of its own: runc makes the namespace, no CRIU file.
  json plain = generateOciSpec({.name = "c", .image = "i", .args = {"x"}}, {}, hostInputs());
  for (const auto& n : plain["linux"]["namespaces"]) EXPECT_FALSE(n.contains("path"));
  EXPECT_FALSE(plain["annotations"].contains("org.criu.config"));
}

TEST(OciSpec, NoTerminalNoRlimitsAndTheUsualNamespacesAndMounts) {
  json spec = generateOciSpec({.name = "c", .image = "i", .args = {"x"}}, {}, hostInputs());
  EXPECT_FALSE(spec["process"]["terminal"].get<bool>());
  EXPECT_FALSE(spec["process"].contains("rlimits")) << "rlimits above the current ones fail here";
  std::vector<std::string> ns;
  for (const auto& n : spec["linux"]["namespaces"]) ns.push_back(n["type"]);
  EXPECT_EQ(ns, (std::vector<std::string>{"pid", "ipc", "uts", "mount", "network"}));
  for (const char* m : {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}) {
    EXPECT_NE(findMount(spec, m), nullptr) << m;
  }
}

TEST(OciSpec, VolumesBecomeBindMounts) {
  ContainerSpec s{.name = "c", .image = "i", .args = {"x"},
                  .volumes = {{"data", "/data", false}, {"conf", "/etc/app", true}}};
  json spec = generateOciSpec(s, {}, hostInputs(2));
  const json* data = findMount(spec, "/data");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ((*data)["type"], "bind");
  EXPECT_EQ((*data)["source"], "/vol/0");
  EXPECT_EQ((*data)["options"][1], "rw");
  const json* conf = findMount(spec, "/etc/app");
  ASSERT_NE(conf, nullptr);
  EXPECT_EQ((*conf)["options"][1], "ro");
}

TEST(OciSpec, RejectsBadInputWithClearMessages) {
  auto expectInvalid = [](ContainerSpec s, const std::string& needle, size_t vols = 0) {
    try {
      generateOciSpec(s, {}, hostInputs(vols));
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expectInvalid({.name = "c", .image = "i"}, "no command");
  expectInvalid({.name = "c", .image = "i", .args = {"x"}, .cwd = "rel"}, "working directory");
  expectInvalid({.name = "c", .image = "i", .args = {"x"}, .cwd = "/a/../b"}, "working directory");
  expectInvalid({.name = "c", .image = "i", .args = {"x"}, .user = "www-data"}, "numeric uid");
  expectInvalid({.name = "c", .image = "i", .args = {"x"}, .user = "1:x"}, "numeric uid");
  expectInvalid({.name = "c", .image = "i", .args = {"x"}, .env = {"NOEQUALS"}}, "KEY=VALUE");
  expectInvalid({.name = "c", .image = "i", .args = {"x"}, .volumes = {{"v", "rel", false}}},
                "volume destination", 1);
  expectInvalid({.name = "c", .image = "i", .args = {"x"}, .volumes = {{"v", "/", false}}},
                "volume destination", 1);
}

TEST(OciSpec, ParseVolumeArg) {
  VolumeMount v = parseVolumeArg("data:/srv/data:ro");
  EXPECT_EQ(v.name, "data");
  EXPECT_EQ(v.destination, "/srv/data");
  EXPECT_TRUE(v.readonly);
  EXPECT_FALSE(parseVolumeArg("d:/x").readonly);
  EXPECT_THROW(parseVolumeArg("nodest"), Error);
  EXPECT_THROW(parseVolumeArg("d:/x:rx"), Error);
}

TEST(OciSpec, VolumeOptionsAsPodmanTakesThem) {
  VolumeMount v = parseVolumeArg("d:/x:ro,U,Z");
  EXPECT_TRUE(v.readonly);
  EXPECT_TRUE(v.chown);
  EXPECT_EQ(v.relabel, 'Z');
  VolumeMount o = parseVolumeArg("d:/x:O,upperdir=/var/u,workdir=/var/w");
  EXPECT_TRUE(o.overlay);
  EXPECT_EQ(o.upperdir, "/var/u");
  EXPECT_EQ(o.workdir, "/var/w");
  // Round trip through the container record.
  VolumeMount back = json(o).get<VolumeMount>();
  EXPECT_TRUE(back.overlay);
  EXPECT_EQ(back.workdir, "/var/w");
  EXPECT_EQ(json(v).get<VolumeMount>().relabel, 'Z');
  auto refused = [](const std::string& arg, const std::string& needle) {
    try {
      parseVolumeArg(arg);
      ADD_FAILURE() << "accepted " << arg;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused("d:/x:O,upperdir=/u", "go together");
  refused("d:/x:O,workdir=/w", "go together");
  refused("d:/x:upperdir=/u,workdir=/w", "need O");
  refused("d:/x:O,upperdir=rel,workdir=/w", "absolute host path");
  refused("d:/x:ro,rw", "twice");
  refused("d:/x:z,Z", "twice");
  refused("d:/x:O,U", "U cannot");
  refused("d:/x:nosuch", "use ro, rw, U, z, Z, O");
}

TEST(OciSpec, TmpfsMountsWithPodmansDefaultsAndCheckedOptions) {
  TmpfsMount plain = parseTmpfsArg("/cache");
  EXPECT_EQ(plain.options, (std::vector<std::string>{"rw", "noexec", "nosuid", "nodev"}));
  TmpfsMount sized = parseTmpfsArg("/run/x:size=1m,mode=1777,exec");
  EXPECT_EQ(sized.options, (std::vector<std::string>{"size=1m", "mode=1777", "exec"}));
  for (const char* bad : {"relative", "/", "/x/../y", "/x:size=", "/x:bogus", "/x:size=1m;rm"}) {
    EXPECT_THROW(parseTmpfsArg(bad), Error) << bad;
  }
  SpecHostInputs host = hostInputs();
  host.tmpfs_destinations = {"/srv/app/tmp"};
  json spec = generateOciSpec({.name = "c", .image = "i", .args = {"x"},
                               .tmpfs = {parseTmpfsArg("/opt/applink/tmp:size=1m")}},
                              {}, host);
  const json* m = findMount(spec, "/srv/app/tmp");
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "tmpfs");
  EXPECT_EQ((*m)["options"], json({"size=1m"}));
  ContainerSpec back = json(ContainerSpec{.name = "c", .image = "i", .tmpfs = {sized}}).get<ContainerSpec>();
  ASSERT_EQ(back.tmpfs.size(), 1u);
  EXPECT_EQ(back.tmpfs[0].options, sized.options);
}

TEST(OciSpec, AnnotationsManagerCreationTimeAndStopSignal) {
  SpecHostInputs host = hostInputs();
  host.created_unix = 1796000000;
  ContainerSpec s{.name = "c", .image = "i", .args = {"x"}, .annotations = {{"team", "core"}},
                  .stop_signal = "SIGINT"};
  json a = generateOciSpec(s, {}, host)["annotations"];
  EXPECT_EQ(a["team"], "core");
  EXPECT_EQ(a["io.container.manager"], "ferry");
  EXPECT_EQ(a["io.ferry.created"], "2026-11-30T00:53:20Z");
  EXPECT_EQ(a["io.ferry.stop-signal"], "2");
  s.annotations["io.container.manager"] = "mine";  // the caller's wins
  s.stop_signal = "";
  json b = generateOciSpec(s, {}, host)["annotations"];
  EXPECT_EQ(b["io.container.manager"], "mine");
  EXPECT_EQ(b["io.ferry.stop-signal"], "15");
  EXPECT_EQ(parseSignal("INT"), 2);
  EXPECT_EQ(parseSignal("9"), 9);
  for (const char* bad : {"", "SIGNOPE", "0", "65", "x9"}) EXPECT_THROW(parseSignal(bad), Error) << bad;
  ContainerSpec back = json(s).get<ContainerSpec>();
  EXPECT_EQ(back.annotations.at("team"), "core");
}

TEST(OciSpec, OnlyMountOptionsReachTheSpec) {
  SpecHostInputs host = hostInputs();
  host.volume_sources = {"/vol/a", "/vol/b"};
  host.overlay_dirs = {{}, {"/ctr/up", "/ctr/work"}};
  ContainerSpec s{.name = "c", .image = "i", .args = {"x"},
                  .volumes = {parseVolumeArg("a:/a:U,z"), parseVolumeArg("b:/b:O,ro")}};
  json spec = generateOciSpec(s, {}, host);
  const json* a = findMount(spec, "/a");
  const json* b = findMount(spec, "/b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ((*a)["options"], json({"rbind", "rw", "nosuid", "nodev"}));
  EXPECT_EQ((*b)["type"], "overlay");
  EXPECT_EQ((*b)["options"], json({"lowerdir=/vol/b", "upperdir=/ctr/up", "workdir=/ctr/work",
                                   "ro", "nosuid", "nodev"}));
}

TEST(OciSpec, EachVolumeOnceAndEachDestinationOnce) {
  EXPECT_NO_THROW(validateVolumes({{"a", "/a", false}, {"b", "/b", true}}));
  EXPECT_THROW(validateVolumes({{"a", "/x", false}, {"a", "/y", false}}), Error);
  EXPECT_THROW(validateVolumes({{"a", "/x", false}, {"b", "/x", false}}), Error);
  EXPECT_THROW(validateVolumes({{"../a", "/x", false}}), Error);
}

TEST(OciSpec, SelinuxLabelsBothOrNeither) {
  ContainerSpec s{.name = "web", .image = "img", .args = {"/bin/app"}};
  SpecHostInputs host = hostInputs();
  json none = generateOciSpec(s, ImageConfig{}, host);
  EXPECT_FALSE(none["process"].contains("selinuxLabel"));
  EXPECT_FALSE(none["linux"].contains("mountLabel"));
  host.process_label = "system_u:system_r:container_t:s0:c1,c2";
  host.mount_label = "system_u:object_r:container_file_t:s0:c1,c2";
  json both = generateOciSpec(s, ImageConfig{}, host);
  EXPECT_EQ(both["process"]["selinuxLabel"], host.process_label);
  EXPECT_EQ(both["linux"]["mountLabel"], host.mount_label);
  host.mount_label.clear();
  EXPECT_THROW(generateOciSpec(s, ImageConfig{}, host), Error);
}

TEST(OciSpec, SecretsSocketActivationAndNotifySocketInTheEnvironment) {
  ContainerSpec s{.name = "web", .image = "img", .args = {"/bin/app"}, .env = {"DB_PASS=overridden"}};
  s.secrets = {{"db", "DB_PASS"}};
  s.sdnotify = "container";
  s.listen_fds = 2;
  s.listen_fdnames = "http:https";
  SpecHostInputs host = hostInputs();
  host.secret_env = {"DB_PASS=hunter2"};
  host.notify_dir = "/var/lib/ferry/hostA/containers/web/notify";
  json spec = generateOciSpec(s, ImageConfig{.env = {"LISTEN_PID=77"}}, host);
  const json& env = spec["process"]["env"];
  auto has = [&](const std::string& kv) { return std::find(env.begin(), env.end(), kv) != env.end(); };
  // The secret wins over -e; LISTEN_PID is the container's init.
  EXPECT_TRUE(has("DB_PASS=hunter2")) << env.dump();
  EXPECT_FALSE(has("DB_PASS=overridden"));
  EXPECT_TRUE(has("LISTEN_PID=1"));
  EXPECT_FALSE(has("LISTEN_PID=77"));
  EXPECT_TRUE(has("LISTEN_FDS=2"));
  EXPECT_TRUE(has("LISTEN_FDNAMES=http:https"));
  EXPECT_TRUE(has("NOTIFY_SOCKET=/run/notify/notify.sock"));
  const json* m = findMount(spec, "/run/notify");
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["source"], host.notify_dir);
  // Read-only: the container cannot swap the socket for a link.
  EXPECT_NE(std::find((*m)["options"].begin(), (*m)["options"].end(), "ro"), (*m)["options"].end());
  // A checkpoint's copy of the spec names the secret, never its value.
  std::string redacted = redactSecrets(spec, s.secrets).dump();
  EXPECT_EQ(redacted.find("hunter2"), std::string::npos);
  EXPECT_NE(redacted.find("DB_PASS=(secret db)"), std::string::npos);
  // Without sd_notify or activation: none of it.
  json plain = generateOciSpec(ContainerSpec{.name = "p", .image = "i", .args = {"/a"}}, ImageConfig{},
                               hostInputs());
  EXPECT_EQ(plain.dump().find("LISTEN_"), std::string::npos);
  EXPECT_FALSE(findMount(plain, "/run/notify"));
  EXPECT_THROW(validateSdNotify("sometimes"), Error);
}

TEST(OciSpec, ContainerSpecJsonRoundTrip) {
  ContainerSpec s{.name = "c", .image = "i", .args = {"a", "b"}, .env = {"K=V"}, .cwd = "/w",
                  .user = "1", .hostname = "h", .volumes = {{"v", "/v", true}}};
  s.label_opts = {"type:spc_t", "level:s0:c1,c2"};
  s.secrets = {{"db", "DB_PASS"}};
  s.sdnotify = "container";
  s.listen_fds = 1;
  s.listen_fdnames = "http";
  ContainerSpec back = json(s).get<ContainerSpec>();
  EXPECT_EQ(json(back), json(s));
}

}  // namespace ferry
