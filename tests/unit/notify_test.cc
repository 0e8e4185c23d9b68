#include "engine/runtime/notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include "common/fs.h"

namespace ferry {

TEST(Notify, ReadyAndStatusFromDatagrams) {
  NotifyState s;
  EXPECT_FALSE(applyNotifyMessage(s, "MAINPID=7", 100));
  EXPECT_TRUE(applyNotifyMessage(s, "STATUS=warming up", 100));
  EXPECT_FALSE(s.ready);
  EXPECT_EQ(s.status, "warming up");
  EXPECT_TRUE(applyNotifyMessage(s, "READY=1\nSTATUS=serving", 200));
  EXPECT_TRUE(s.ready);
  EXPECT_EQ(s.ready_unix, 200);
  EXPECT_EQ(s.status, "serving");
  // READY=1 again changes nothing; a status is kept printable, one line.
  EXPECT_FALSE(applyNotifyMessage(s, "READY=1", 300));
  EXPECT_EQ(s.ready_unix, 200);
  applyNotifyMessage(s, std::string("STATUS=a\tb\x1b[2J") + std::string(400, 'x'), 300);
  EXPECT_EQ(s.status.size(), 256u);
  EXPECT_EQ(s.status.substr(0, 7), "a?b?[2J");
}

TEST(Notify, StateFileRoundTrips) {
  TempDir t;
  fs::path f = t.path() / "notify.state";
  EXPECT_FALSE(readNotifyState(f).ready);
  writeNotifyState(f, {true, "serving", 42});
  NotifyState back = readNotifyState(f);
  EXPECT_TRUE(back.ready);
  EXPECT_EQ(back.status, "serving");
  EXPECT_EQ(back.ready_unix, 42);
}

// The listener with a real socket: a datagram sent to it lands in the
// state file; bound again (a restarted agent), the same path works.
TEST(Notify, ListenerRecordsWhatArrivesAndRebindsTheSamePath) {
  TempDir t;
  fs::path dir = t.path() / "notify", state = t.path() / "notify.state";
  auto send = [&](const std::string& msg) {
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, (dir / "notify.sock").c_str(), sizeof a.sun_path - 1);
    ssize_t n = ::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::close(fd);
    return n == static_cast<ssize_t>(msg.size());
  };
  auto waitState = [&](const std::function<bool(const NotifyState&)>& ok) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end) {
      if (ok(readNotifyState(state))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  {
    NotifyListener l;
    l.watch("web", dir, state);
    ASSERT_TRUE(send("STATUS=starting"));
    EXPECT_TRUE(waitState([](const NotifyState& s) { return s.status == "starting" && !s.ready; }));
  }
  EXPECT_FALSE(send("READY=1")) << "nobody should be bound once the listener is gone";
  NotifyListener again;
  again.watch("web", dir, state);
  ASSERT_TRUE(send("READY=1\nSTATUS=up"));
  EXPECT_TRUE(waitState([](const NotifyState& s) { return s.ready && s.status == "up"; }));
  again.unwatch("web");
}

}  // namespace ferry
