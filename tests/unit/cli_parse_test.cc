// The ferry CLI's parsing (tools/ferry/app.h): argument vectors in, the
// exit code, the chosen command and its option values out. Nothing here
// reaches a coordinator: parsing only sets the action, which is not run.
#include <gtest/gtest.h>

#include <sstream>

#include "tools/ferry/app.h"
#include "tools/ferry/options.h"

namespace ferry::cli {
namespace {

using std::chrono::milliseconds;

// A fresh tree per parse, as main() builds one.
struct Parsed {
  Invocation inv;
  CLI::App app;
  std::optional<int> code;  // nullopt: the command would run
  std::string out, err;

  explicit Parsed(std::vector<std::string> args) {
    buildApp(app, inv);
    std::ostringstream o, e;
    code = parse(app, inv, std::move(args), o, e);
    out = o.str();
    err = e.str();
  }
  // A parsed option's value, by command path and option name.
  template <typename T>
  T value(const std::vector<std::string>& path, const std::string& option) {
    CLI::App* a = &app;
    for (const auto& p : path) a = a->get_subcommand(p);
    return a->get_option(option)->as<T>();
  }
};

TEST(CliParse, EachCommandHasItsOwnHelpAndExitsZero) {
  for (std::vector<std::string> path :
       {std::vector<std::string>{"migrate"}, {"run"}, {"stop"}, {"rm"}, {"ps"}, {"logs"},
        {"image", "import"}, {"image", "ls"}, {"secret", "create"}, {"secret", "rm"},
        {"drain"}, {"rebalance"}, {"cordon"}, {"history"}, {"pending"}, {"resume-source"},
        {"checkpoint"}, {"restore"}, {"cluster", "up"}, {"keys", "generate"}, {"keys", "add"}}) {
    std::vector<std::string> args = path;
    args.push_back("--help");
    Parsed p(args);
    std::string name = path.back();
    ASSERT_EQ(p.code, 0) << name << ": " << p.err;
    EXPECT_FALSE(p.inv.action) << name;
    EXPECT_NE(p.out.find("Usage: ferry " + (path.size() > 1 ? path[0] + " " : "") + name),
              std::string::npos)
        << p.out;
  }
  Parsed mg({"migrate", "--help"});
  EXPECT_NE(mg.out.find("--precopy"), std::string::npos);
  EXPECT_EQ(mg.out.find("--parallel"), std::string::npos) << "drain's option in migrate's help";
}

TEST(CliParse, TopLevelHelpAndVersionExitZero) {
  Parsed help({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("migrate"), std::string::npos);
  Parsed word({"help"});
  EXPECT_EQ(word.code, std::nullopt);
  Parsed version({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_FALSE(version.out.empty());
}

TEST(CliParse, NumbersAreStrict) {
  for (const char* bad : {"5x", "-1", "0", "0x10", " 5", "", "99999999999999999999"}) {
    Parsed p({"history", "-n", bad});
    EXPECT_EQ(p.code, 2) << "history -n '" << bad << "'";
    EXPECT_FALSE(p.err.empty());
  }
  Parsed ok({"history", "-n", "5"});
  ASSERT_EQ(ok.code, std::nullopt) << ok.err;
  EXPECT_EQ(ok.value<uint32_t>({"history"}, "-n"), 5u);
  EXPECT_EQ(Parsed({"drain", "h", "--parallel", "17"}).code, 2);
  EXPECT_EQ(Parsed({"resume-source", "12a", "--target-lost"}).code, 2);
  EXPECT_EQ(Parsed({"rebalance", "--high", "80%"}).code, 2);
}

TEST(CliParse, DurationsTakeUnitsAndABareNumberKeepsItsOldUnit) {
  EXPECT_EQ(parseDuration("500ms", milliseconds(1000)), milliseconds(500));
  EXPECT_EQ(parseDuration("90s", milliseconds(1000)), milliseconds(90000));
  EXPECT_EQ(parseDuration("2m", milliseconds(1000)), milliseconds(120000));
  EXPECT_EQ(parseDuration("1h", milliseconds(1000)), milliseconds(3600000));
  EXPECT_EQ(parseDuration("7", milliseconds(1000)), milliseconds(7000));
  for (const char* bad : {"", "s", "0", "0s", "5q", "1.5s", "-3s", "5 s", "99999999999h"})
    EXPECT_THROW(parseDuration(bad, milliseconds(1000)), CLI::ValidationError) << bad;

  Parsed t({"--timeout", "500ms", "hosts"});
  ASSERT_EQ(t.code, std::nullopt) << t.err;
  EXPECT_EQ(t.inv.session.timeout, milliseconds(500));
  Parsed bare({"--timeout", "120", "hosts"});
  EXPECT_EQ(bare.inv.session.timeout, milliseconds(120000));  // seconds, as before units
  EXPECT_EQ(Parsed({"--timeout", "2x", "hosts"}).code, 2);
  EXPECT_EQ(Parsed({"drain", "h", "--deadline", "10m"}).code, std::nullopt);
  EXPECT_EQ(Parsed({"drain", "h", "--deadline", "soon"}).code, 2);
}

TEST(CliParse, StopAndRmTakeSeveralNames) {
  Parsed stop({"stop", "a", "b"});
  ASSERT_EQ(stop.code, std::nullopt) << stop.err;
  EXPECT_EQ(stop.inv.command, "stop");
  EXPECT_EQ(stop.value<std::vector<std::string>>({"stop"}, "name"),
            (std::vector<std::string>{"a", "b"}));
  Parsed rm({"rm", "-f", "a", "b", "c"});
  ASSERT_EQ(rm.code, std::nullopt) << rm.err;
  EXPECT_EQ(rm.value<std::vector<std::string>>({"rm"}, "name").size(), 3u);
  EXPECT_TRUE(rm.value<bool>({"rm"}, "-f"));
  EXPECT_EQ(Parsed({"stop"}).code, 2);
}

TEST(CliParse, AnExtraArgumentIsAUsageError) {
  EXPECT_EQ(Parsed({"cordon", "a", "b"}).code, 2);
  EXPECT_EQ(Parsed({"migrate", "n", "a", "b", "c"}).code, 2);
  EXPECT_EQ(Parsed({"logs", "a", "b"}).code, 2);
  EXPECT_EQ(Parsed({"pending", "x"}).code, 2);
  EXPECT_EQ(Parsed({"history", "--bogus"}).code, 2);
  Parsed unknown({"--json", "nosuchcommand"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("unknown command 'nosuchcommand'"), std::string::npos) << unknown.err;
  Parsed few({"migrate", "demo", "hostA"});
  EXPECT_EQ(few.code, 2);
  EXPECT_NE(few.err.find("migrate needs N SRC DST"), std::string::npos) << few.err;
  EXPECT_EQ(Parsed({}).code, 2);
}

TEST(CliParse, OptEqualsValueDoubleDashAndCombinedShortFlags) {
  Parsed eq({"drain", "hostA", "--parallel=3", "--dry-run"});
  ASSERT_EQ(eq.code, std::nullopt) << eq.err;
  EXPECT_EQ(eq.value<uint32_t>({"drain"}, "--parallel"), 3u);
  Parsed coord({"--coordinator=tcp://10.0.0.1:7000", "ps", "--host=hostB"});
  ASSERT_EQ(coord.code, std::nullopt) << coord.err;
  EXPECT_EQ(coord.inv.session.coordinator, "tcp://10.0.0.1:7000");
  EXPECT_EQ(coord.value<std::string>({"ps"}, "--host"), "hostB");
  // After --, a name that looks like an option is a name.
  Parsed dash({"rm", "--", "-odd"});
  ASSERT_EQ(dash.code, std::nullopt) << dash.err;
  EXPECT_EQ(dash.value<std::vector<std::string>>({"rm"}, "name"),
            (std::vector<std::string>{"-odd"}));
  Parsed combined({"--json", "history", "-n5"});
  ASSERT_EQ(combined.code, std::nullopt) << combined.err;
  EXPECT_EQ(combined.value<uint32_t>({"history"}, "-n"), 5u);
}

TEST(CliParse, GlobalJsonAlsoFollowsTheCommandButNotInsideRun) {
  Parsed after({"migrate", "demo", "hostA", "hostB", "--json"});
  ASSERT_EQ(after.code, std::nullopt) << after.err;
  EXPECT_TRUE(after.inv.session.json_out);
  EXPECT_EQ(after.value<std::string>({"migrate"}, "target"), "hostB");
  // Words after IMAGE are the container's command line, --json included.
  Parsed run({"run", "--host", "hostA", "--name=demo", "-v", "data:/data", "counter",
              "/bin/counter", "--json", "-x"});
  ASSERT_EQ(run.code, std::nullopt) << run.err;
  EXPECT_EQ(run.inv.command, "run");
  EXPECT_FALSE(run.inv.session.json_out);
  EXPECT_EQ(Parsed({"run", "--host", "h", "--name", "n"}).code, 2);  // no IMAGE
  EXPECT_EQ(Parsed({"run", "--host", "h", "--name", "n", "--bogus", "img"}).code, 2);
}

TEST(CliParse, RepeatableOptionsTakeOneValueEach) {
  Parsed mg({"migrate", "--ignore", "arch", "--ignore=cgroup", "demo", "hostA", "hostB",
             "--precopy", "off"});
  ASSERT_EQ(mg.code, std::nullopt) << mg.err;
  EXPECT_EQ(mg.value<std::vector<std::string>>({"migrate"}, "--ignore"),
            (std::vector<std::string>{"arch", "cgroup"}));
  EXPECT_EQ(mg.value<std::string>({"migrate"}, "container"), "demo");
  Parsed precopy({"migrate", "d", "a", "b", "--precopy", "21"});
  EXPECT_EQ(precopy.code, 2);
  EXPECT_NE(precopy.err.find("--precopy takes auto, off or a number of rounds"), std::string::npos)
      << precopy.err;
  for (const char* ok : {"auto", "none", "0", "1", "19"}) {
    EXPECT_EQ(Parsed({"migrate", "d", "a", "b", "--compress", ok}).code, std::nullopt) << ok;
  }
  for (const char* bad : {"20", "-1", "fast", ""}) {
    Parsed compress({"migrate", "d", "a", "b", "--compress", bad});
    EXPECT_EQ(compress.code, 2) << bad;
    EXPECT_NE(compress.err.find("--compress takes auto, none or a zstd level from 1 to 19"),
              std::string::npos)
        << compress.err;
  }
  // A daemon's argument may start with '-'.
  Parsed up({"cluster", "up", "--agent-arg", "--memory-capacity", "--agent-arg", "1024"});
  ASSERT_EQ(up.code, std::nullopt) << up.err;
  EXPECT_EQ(up.value<std::vector<std::string>>({"cluster", "up"}, "--agent-arg"),
            (std::vector<std::string>{"--memory-capacity", "1024"}));
}

TEST(CliParse, ChecksBeyondSingleOptionsFailWhileParsing) {
  EXPECT_EQ(Parsed({"image", "import", "n", "f"}).code, 2);  // neither --host nor --all
  EXPECT_EQ(Parsed({"image", "import", "n", "f", "--host", "h", "--all"}).code, 2);
  EXPECT_EQ(Parsed({"image", "import", "n", "f", "--all"}).code, std::nullopt);
  EXPECT_EQ(Parsed({"image", "import", "bad/name", "f", "--all"}).code, 2);
  Parsed rs({"resume-source", "7"});
  EXPECT_EQ(rs.code, 2);
  EXPECT_NE(rs.err.find("--target-lost"), std::string::npos) << rs.err;
  EXPECT_FALSE(rs.inv.action);
}

TEST(CliParse, BashCompletionComesFromTheTree) {
  Parsed p({"completion", "bash"});
  ASSERT_EQ(p.code, std::nullopt) << p.err;
  std::string script = bashCompletion(p.app);
  EXPECT_NE(script.find("complete -o default -F _ferry ferry"), std::string::npos);
  EXPECT_NE(script.find("'migrate') words='--help -h --precopy --compress --postcopy --no-postcopy --tcp-close --ignore'"), std::string::npos)
      << script;
  EXPECT_NE(script.find("'secret') words='create ls rm"), std::string::npos);
  EXPECT_EQ(Parsed({"completion", "fish"}).code, 2);
}

}  // namespace
}  // namespace ferry::cli
