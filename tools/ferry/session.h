// The CLI's connection to a ferry cluster: the coordinator's endpoint, keys,
// output mode and timeout the global options chose, and the RPC client made
// from them on first use (parsing alone never connects).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/chunk_stream.h"
#include "protocol/rpc.h"

namespace ferry::cli {

struct Session {
  std::string coordinator;  // empty until resolveDefaults()
  std::string keys_dir;
  bool json_out = false;
  std::chrono::milliseconds timeout{60000};
  zmq::context_t ctx;

  // Fills coordinator and keys_dir from $FERRY_COORDINATOR, $FERRY_KEYS or
  // the local cluster's record when the options left them empty.
  void resolveDefaults();

  // One request and its answer; `on_progress` sees each progress report.
  // Blocks up to `timeout` for each message from the coordinator.
  std::unique_ptr<proto::Decoded> call(
      const proto::Fill& fill, const std::function<void(proto::Progress::Reader)>& on_progress = {});
  proto::StreamOptions streamOptions() const;

 private:
  std::unique_ptr<proto::RpcClient> rpc_;
};

// The hosts that are up, or an error saying none is.
std::vector<std::string> upHosts(Session& s);

// Streams `file` to an agent that the coordinator prepared (image import or
// restore). Returns once the agent accepted; throws its error otherwise.
void sendFile(Session& s, const std::string& file,
              const std::function<void(proto::Message::Builder)>& request, const std::string& label);

std::string bytesOf(capnp::Data::Reader d);

}  // namespace ferry::cli
