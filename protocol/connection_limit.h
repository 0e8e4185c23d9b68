// A cap on the connections a server socket holds. libzmq has none, and it
// does not survive running out of fds: its listener's accept(2) fails with
// EMFILE, the connection stays queued, the listener stays readable, and the
// I/O thread polls it again at once -- 150 idle connections under a low
// `ulimit -n` had the coordinator spinning at 100 % CPU and answering no one.
// Kept below the fd limit, accept never fails: the socket's monitor reports
// each accepted connection with its fd, and past the cap the newest are shut
// down (shutdown(2), not close: libzmq owns the fd and closes it once it
// reads the end) -- the newest of the source holding the most (an IP
// address; a unix socket's peer uid), so that one flooding source does not
// lock out the others. Idle ones that never finish their handshake go by
// themselves (ZMQ_HANDSHAKE_IVL), so a flood leaves room again.
//
// libzmq's unix-socket listener also aborts the process on EMFILE; this
// library's accept4 (connection_limit.cc) keeps it alive, and the cap, enforced on
// a thread of its own as each connection is accepted, keeps the fds free.
//
// Thread-safety: the accessors may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <zmq.hpp>

namespace ferry::proto {

class ConnectionLimit {
 public:
  // Watches `server` (which must outlive this) from now on: create it
  // before the socket binds, so that no connection goes unseen. Enforces on
  // a thread of its own, as each connection is accepted: a caller busy
  // elsewhere must not let a flood run past the cap.
  ConnectionLimit(zmq::context_t& ctx, zmq::socket_t& server, size_t max);
  ~ConnectionLimit();
  ConnectionLimit(const ConnectionLimit&) = delete;
  ConnectionLimit& operator=(const ConnectionLimit&) = delete;

  size_t max() const { return max_; }
  size_t open() const { return open_count_.load(); }
  uint64_t shed() const { return shed_.load(); }

 private:
  void run();
  // Reads the monitor's events and sheds the newest connections past the cap.
  void enforce();

  size_t max_;
  zmq::socket_t monitor_;
  struct Conn {
    int fd;
    std::string source;
  };
  // Accepted and not yet disconnected, by the order accepted (the thread's).
  std::map<uint64_t, Conn> open_;
  uint64_t sequence_ = 0;
  std::atomic<size_t> open_count_{0};
  std::atomic<uint64_t> shed_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// How many connections fit below RLIMIT_NOFILE with `reserve` fds left for
// everything else (files, the store, libzmq's own): the soft limit less the
// fds open now less `reserve`; 0 when none do.
size_t connectionsWithinFdLimit(size_t reserve);
// Raises RLIMIT_NOFILE's soft limit to its hard limit (what a daemon that
// holds many connections should run with); the new soft limit.
uint64_t raiseFdLimit();

}  // namespace ferry::proto
