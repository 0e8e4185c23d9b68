// Logs under systemd (common/log.h): the journal sink's entries as journald
// receives them -- the test binds the journal's own socket,
// /run/systemd/journal/socket, when no journald holds it (this machine has
// none), and reads the native protocol's datagrams.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>

#include "common/fd.h"
#include "common/fs.h"
#include "common/log.h"

namespace ferry {
namespace {

const char* kJournalSocket = "/run/systemd/journal/socket";

// One entry of the native protocol: "KEY=value\n", or for a value with a
// newline "KEY\n" + 64-bit little-endian length + value + "\n".
std::map<std::string, std::string> parseEntry(const std::string& d) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i < d.size()) {
    size_t nl = d.find('\n', i);
    if (nl == std::string::npos) break;
    std::string line = d.substr(i, nl - i);
    if (auto eq = line.find('='); eq != std::string::npos) {
      out[line.substr(0, eq)] = line.substr(eq + 1);
      i = nl + 1;
    } else {
      uint64_t len = 0;
      std::memcpy(&len, d.data() + nl + 1, 8);
      out[line] = d.substr(nl + 9, len);
      i = nl + 9 + len + 1;
    }
  }
  return out;
}

class JournalLog : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (binds the journal's socket in /run)";
    struct stat st {};
    if (::stat(kJournalSocket, &st) == 0) {
      GTEST_SKIP() << "a journald holds " << kJournalSocket << " on this machine";
    }
    made_dirs_ = !pathExists("/run/systemd/journal");
    fs::create_directories("/run/systemd/journal");
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, kJournalSocket, sizeof a.sun_path - 1);
    ASSERT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  }
  void TearDown() override {
    fd_.reset();
    ::unlink(kJournalSocket);
    if (made_dirs_) {
      std::error_code ec;
      fs::remove("/run/systemd/journal", ec);
      fs::remove("/run/systemd", ec);  // only if empty
    }
  }
  std::map<std::string, std::string> next() {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) {
      ADD_FAILURE() << "no entry reached the journal's socket within 5 s";
      return {};
    }
    std::string buf(1 << 16, '\0');
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n <= 0) return {};
    buf.resize(static_cast<size_t>(n));
    return parseEntry(buf);
  }

  UniqueFd fd_;
  bool made_dirs_ = false;
};

// One test, not several: each would bind the same system path, and ctest
// runs a binary's tests in parallel.
TEST_F(JournalLog, AnEntryCarriesTheMessagePriorityFerrysFieldsAndItsScopes) {
  spdlog::logger log("agent", journalSink("agent"));
  log.warn("[web] pre-copy round {}: read {}", 2, "1.0 MiB");
  auto e = next();
  EXPECT_EQ(e["MESSAGE"], "[web] pre-copy round 2: read 1.0 MiB");
  EXPECT_EQ(e["PRIORITY"], "4");  // LOG_WARNING
  EXPECT_EQ(e["FERRY_COMPONENT"], "agent");
  EXPECT_EQ(e["CONTAINER_NAME"], "web");
  EXPECT_EQ(e["SYSLOG_IDENTIFIER"], program_invocation_short_name);
  EXPECT_EQ(e.count("FERRY_MIGRATION_ID"), 0u);

  log.info("migration #42 of db rolled back");
  e = next();
  EXPECT_EQ(e["FERRY_MIGRATION_ID"], "42");
  EXPECT_EQ(e["PRIORITY"], "6");  // LOG_INFO
  EXPECT_EQ(e.count("CONTAINER_NAME"), 0u);

  log.error("two lines\nin one entry");
  e = next();
  EXPECT_EQ(e["MESSAGE"], "two lines\nin one entry");
  EXPECT_EQ(e["PRIORITY"], "3");

  // A scope's fields are added on its thread until it ends.
  {
    LogFields outer(LogFields::Fields{{"CONTAINER_NAME", "db"}, {"FERRY_PHASE", "pre-copy"}});
    {
      LogFields inner("FERRY_PHASE", "post-copy");
      log.info("[ignored] a line whose scope names its container");
      e = next();
      EXPECT_EQ(e["CONTAINER_NAME"], "db");      // the scope wins over the text
      EXPECT_EQ(e["FERRY_PHASE"], "post-copy");  // the inner scope wins
    }
    log.info("after the inner scope");
    e = next();
    EXPECT_EQ(e["FERRY_PHASE"], "pre-copy");
  }
  log.info("after both");
  e = next();
  EXPECT_EQ(e.count("FERRY_PHASE"), 0u);
  EXPECT_EQ(e.count("CONTAINER_NAME"), 0u);
}

// The choice of sink: the journal only when stderr is the stream that
// $JOURNAL_STREAM names; a terminal or a file keeps plain lines.
TEST(JournalStream, StderrIsTheJournalOnlyWhenJournalStreamNamesIt) {
  struct stat st {};
  ASSERT_EQ(::fstat(2, &st), 0);
  std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", mine.c_str(), 1);
  EXPECT_TRUE(stderrIsJournal());
  ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)).c_str(), 1);
  EXPECT_FALSE(stderrIsJournal());  // inherited by a child whose stderr went elsewhere
  ::setenv("JOURNAL_STREAM", "garbage", 1);
  EXPECT_FALSE(stderrIsJournal());
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderrIsJournal());
}

}  // namespace
}  // namespace ferry
