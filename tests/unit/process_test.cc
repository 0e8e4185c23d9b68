#include "engine/runtime/process.h"

#include <signal.h>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {

TEST(Process, CapturesOutputAndExitCode) {
  LocalCommandRunner r;
  ProcessResult p = r.run({"sh", "-c", "echo out; echo err >&2; exit 3"}, {});
  EXPECT_EQ(p.out, "out\n");
  EXPECT_EQ(p.err, "err\n");
  EXPECT_EQ(p.exit_code, 3);
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.describe(), "exit code 3");
}

TEST(Process, PassesEnvStdinAndInheritedFd) {
  LocalCommandRunner r;
  Pipe pipe = makePipe();
  RunOptions o;
  o.env = {"FERRY_X=42"};
  o.stdin_data = "hello";
  o.inherit_fds = {pipe.write.get()};
  std::string script = "cat; echo $FERRY_X; echo via-fd >&" + std::to_string(pipe.write.get());
  ProcessResult p = r.run({"sh", "-c", script}, o);
  pipe.write.reset();
  EXPECT_TRUE(p.ok()) << p.err;
  EXPECT_EQ(p.out, "hello42\n");
  EXPECT_EQ(readAll(pipe.read.get(), "pipe"), "via-fd\n");
}

TEST(Process, TimeoutKillsTheChild) {
  LocalCommandRunner r;
  RunOptions o;
  o.timeout = std::chrono::milliseconds(200);
  auto t0 = std::chrono::steady_clock::now();
  ProcessResult p = r.run({"sleep", "30"}, o);
  EXPECT_TRUE(p.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(Process, MissingProgramIsAClearError) {
  LocalCommandRunner r;
  try {
    r.run({"/nonexistent/ferry-tool"}, {});
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot run '/nonexistent/ferry-tool'"), std::string::npos);
  }
}

TEST(Process, ChildIsKilledAndReapedOnDestruction) {
  pid_t pid;
  {
    Child c = spawnChild({"sleep", "30"});
    pid = c.pid();
    EXPECT_TRUE(processAlive(pid));
  }
  EXPECT_FALSE(processAlive(pid));
}

TEST(Process, OutputFileReceivesBothStreams) {
  TempDir t;
  LocalCommandRunner r;
  RunOptions o;
  o.output_file = (t.path() / "log").string();
  ProcessResult p = r.run({"sh", "-c", "echo a; echo b >&2"}, o);
  EXPECT_TRUE(p.ok());
  EXPECT_EQ(p.out, "");
  EXPECT_EQ(readFile(t.path() / "log"), "a\nb\n");
}

}  // namespace ferry
