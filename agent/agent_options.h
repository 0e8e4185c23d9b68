// How ferry-agent runs: its name, the coordinator, its streams, and when it
// asks for its own drain. A plain value, filled once by main().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "protocol/chunk_stream.h"

namespace ferry::agent {

struct AgentOptions {
  std::string name;
  std::string coordinator;   // e.g. tcp://127.0.0.1:7000
  std::string data_address;  // this host's address for streams, e.g. 127.0.0.2
  // The address peers are told to send streams to (empty: data_address):
  // for a host reached through NAT or a proxy that keeps the port.
  std::string advertise_address;
  const std::string& advertisedAddress() const {
    return advertise_address.empty() ? data_address : advertise_address;
  }
  std::chrono::milliseconds heartbeat{1000};
  std::optional<proto::KeyPair> keys;  // CURVE, once configured
  std::string coordinator_key;
  // A peer silent this long fails a stream (and its migration rolls back).
  std::chrono::milliseconds stream_timeout{60000};
  // How long commit, rollback and discard wait for a transfer of the same
  // container still in progress here to end.
  std::chrono::milliseconds busy_wait{90000};  // > stream_timeout
  // Commands carried out at once at most (migrations, runs, stops...); one
  // more is refused as retryable. Each runs on its own worker thread.
  size_t max_workers = 32;
  // Memory offered to containers, reported for the planners (0: the host's).
  uint64_t memory_capacity = 0;
  // When stopped: ask for this host to be drained and wait this long for it
  // (0: stop at once).
  std::chrono::seconds drain_on_stop{0};
  // Host conditions that ask for this host to be drained (0: off): memory
  // pressure (PSI "some" avg10 of /proc/pressure/memory, percent) above,
  // or free space of the state root's file system (percent) below, for three
  // heartbeats in a row. Asked once per episode: the host is cordoned by the
  // drain, and a new request waits until the condition has cleared.
  double drain_on_memory_pressure = 0;
  double drain_on_disk_free = 0;
};

}  // namespace ferry::agent
