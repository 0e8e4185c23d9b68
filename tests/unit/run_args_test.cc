// The run options both CLIs take and the agent turns into a spec.
#include "engine/spec/run_args.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace ferry {

namespace {

// Feeds a command line through takeRunOption as a CLI does.
RunArgs parse(std::vector<std::string> argv) {
  RunArgs r;
  size_t i = 0;
  auto value = [&](const std::string& what) -> std::string {
    if (i >= argv.size()) throw std::runtime_error("missing " + what);
    return argv[i++];
  };
  while (i < argv.size()) {
    std::string o = argv[i++];
    if (!takeRunOption(o, value, r)) {
      r.image = o;
      while (i < argv.size()) r.args.push_back(argv[i++]);
    }
  }
  return r;
}

}  // namespace

TEST(RunArgs, EveryOptionReachesTheSpec) {
  RunArgs r = parse({"--name", "web", "-v", "data:/data:ro,U", "-e", "A=1", "-w", "/srv", "-u", "app:staff",
                     "--hostname", "h", "--group-add", "audio", "--hostuser", "bob", "--umask", "027",
                     "--no-create-workdir", "--tmpfs", "/cache:size=1m", "--annotation", "team=core",
                     "--stop-signal", "SIGINT", "--security-opt", "label=type:spc_t", "--secret",
                     "db,type=env,target=DB", "--sdnotify=container", "--userns", "host", "img",
                     "/bin/app", "-x"});
  ContainerSpec s = specFromRunArgs(r);
  EXPECT_EQ(s.name, "web");
  EXPECT_EQ(s.image, "img");
  EXPECT_EQ(s.args, (std::vector<std::string>{"/bin/app", "-x"}));
  ASSERT_EQ(s.volumes.size(), 1u);
  EXPECT_TRUE(s.volumes[0].readonly);
  EXPECT_TRUE(s.volumes[0].chown);
  EXPECT_EQ(s.env, std::vector<std::string>{"A=1"});
  EXPECT_EQ(s.cwd, "/srv");
  EXPECT_EQ(s.user, "app:staff");
  EXPECT_EQ(s.hostname, "h");
  EXPECT_EQ(s.group_add, std::vector<std::string>{"audio"});
  EXPECT_EQ(s.host_users, std::vector<std::string>{"bob"});
  EXPECT_EQ(s.umask, "027");
  EXPECT_FALSE(s.create_workdir);
  ASSERT_EQ(s.tmpfs.size(), 1u);
  EXPECT_EQ(s.tmpfs[0].destination, "/cache");
  EXPECT_EQ(s.annotations.at("team"), "core");
  EXPECT_EQ(s.stop_signal, "SIGINT");
  EXPECT_EQ(s.label_opts, std::vector<std::string>{"type:spc_t"});
  ASSERT_EQ(s.secrets.size(), 1u);
  EXPECT_EQ(s.secrets[0].target, "DB");
  EXPECT_EQ(s.sdnotify, "container");
  EXPECT_EQ(parse({"--sdnotify", "ignore", "img"}).sdnotify, "ignore");
  EXPECT_EQ(s.userns, "host");
  EXPECT_EQ(specFromRunArgs(parse({"--name", "w", "img"})).userns, "auto");  // the default
}

TEST(RunArgs, BadValuesAreRefusedNamingThem) {
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  std::vector<Case> cases = {
      {{"--name", "w", "-e", "NOEQUALS", "img"}, "KEY=VALUE"},
      {{"--name", "w", "-v", "data:/d:bogus", "img"}, "bogus"},
      {{"--name", "w", "--umask", "9", "img"}, "umask"},
      {{"--name", "w", "--annotation", "=v", "img"}, "annotation"},
      {{"--name", "w", "--stop-signal", "SIGNOPE", "img"}, "SIGNOPE"},
      {{"--name", "w", "--security-opt", "label=typo:x", "img"}, "label=disable"},
      {{"--name", "w", "--secret", "db", "img"}, "type=env"},
      {{"--name", "w", "--sdnotify", "sometimes", "img"}, "container, conmon or ignore"},
      {{"--name", "w", "--userns", "keep-id", "img"}, "--userns=keep-id"},
      {{"--name", "bad/name", "img"}, "bad/name"},
      {{"--name", "w", "--hostname", "no_underscores", "img"}, "--hostname"},
      {{"--name", "w"}, "no image"},
      {{"--name", "w", "--network", "bridge", "img"}, "--network bridge: no such network"},
      {{"--name", "w", "--ip", "10.1.2", "img"}, "--ip '10.1.2'"},
      {{"--name", "w", "-p", "80", "img"}, "HOSTPORT:PORT"},
      {{"--name", "w", "-p", "80:80", "-p", "80:81", "img"}, "published twice"},
      {{"--name", "w", "--network", "none", "-p", "80:80", "img"}, "--network none"},
      {{"--name", "w", "--ip", "10.66.0.5", "img"}, "a coordinator with --network-cidr"},
  };
  for (const auto& c : cases) {
    try {
      specFromRunArgs(parse(c.argv));
      ADD_FAILURE() << "accepted: " << c.says;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
    }
  }
  // Only label= security options exist.
  EXPECT_THROW(parse({"--security-opt", "seccomp=unconfined"}), Error);
}

TEST(RunArgs, TheCoordinatorsAddressReachesTheSpecInTheHostsUserNamespace) {
  RunArgs r = parse({"--name", "web", "-p", "8080:80", "--publish", "53:53/udp", "img"});
  r.ip = "10.66.0.7";  // what the coordinator fills in
  r.mac = "02:66:0a:42:00:07";
  r.cidr = "10.66.0.0/16";
  ContainerSpec s = specFromRunArgs(r);
  EXPECT_EQ(s.network.ip, "10.66.0.7");
  EXPECT_EQ(s.network.mac, "02:66:0a:42:00:07");
  EXPECT_EQ(s.network.cidr, "10.66.0.0/16");
  EXPECT_EQ(s.network.ports, (std::vector<std::string>{"8080:80/tcp", "53:53/udp"}));
  EXPECT_EQ(s.userns, "host");  // CRIU cannot dump it in a user namespace of its own yet
  r.userns = "auto";
  try {
    specFromRunArgs(r);
    ADD_FAILURE() << "--userns auto with an address was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--network none"), std::string::npos) << e.what();
  }
  // --network none: no address, the user namespace as asked.
  RunArgs none = parse({"--name", "batch", "--network", "none", "img"});
  none.cidr = "10.66.0.0/16";
  ContainerSpec n = specFromRunArgs(none);
  EXPECT_TRUE(n.network.empty());
  EXPECT_EQ(n.userns, "auto");
}

}  // namespace ferry
