#include "tools/ferry/session.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "common/byte_stream.h"
#include "common/fd.h"
#include "protocol/capnp_text.h"
#include "protocol/curve.h"
#include "tools/cluster.h"
#include "tools/ferry/output.h"

namespace ferry::cli {
namespace {

// The local cluster's record, when there is one in the default place.
std::optional<cluster::ClusterState> localCluster() {
  try {
    return cluster::readState(cluster::ClusterOptions{}.dir);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

void Session::resolveDefaults() {
  std::optional<cluster::ClusterState> local = localCluster();
  if (coordinator.empty()) {
    if (const char* env = std::getenv("FERRY_COORDINATOR"); env && *env) {
      coordinator = env;
    } else {
      coordinator = local ? local->coordinator_endpoint : "";
    }
  }
  if (keys_dir.empty()) {
    if (const char* env = std::getenv("FERRY_KEYS"); env && *env) {
      keys_dir = env;
    } else if (local && coordinator == local->coordinator_endpoint) {
      keys_dir = local->keys_dir.string();  // the local cluster's own keys
    }
  }
  // Without keys, a coordinator takes the CLI on its unix socket only.
  if (coordinator.empty()) {
    coordinator = keys_dir.empty() ? proto::kDefaultCoordinatorSocket : proto::kDefaultCoordinatorTcp;
  }
}

std::unique_ptr<proto::Decoded> Session::call(
    const proto::Fill& fill, const std::function<void(proto::Progress::Reader)>& on_progress) {
  if (!rpc_) {
    std::optional<proto::CurveClientKeys> curve;
    if (!keys_dir.empty()) {
      curve = proto::CurveClientKeys{
          proto::readKeyPair(std::filesystem::path(keys_dir) / "client.key"),
          proto::readPublicKey(std::filesystem::path(keys_dir) / "coordinator.pub")};
    }
    proto::checkCanConnect(coordinator);
    rpc_ = std::make_unique<proto::RpcClient>(ctx, coordinator, curve);
  }
  try {
    return rpc_->call(fill, timeout, on_progress);
  } catch (Error& e) {
    // A CurveZMQ coordinator drops a client without keys in silence.
    if (e.category() == ErrorCategory::kRetryable && keys_dir.empty() &&
        std::string(e.what()).find("no answer from") != std::string::npos) {
      throw Error(e.category(), std::string(e.what()) +
                                    "; if the cluster uses CurveZMQ keys, give them with --keys DIR "
                                    "or FERRY_KEYS");
    }
    throw;
  }
}

proto::StreamOptions Session::streamOptions() const {
  proto::StreamOptions so;
  if (!keys_dir.empty())
    so.own_keys = proto::readKeyPair(std::filesystem::path(keys_dir) / "client.key");
  return so;
}

std::vector<std::string> upHosts(Session& s) {
  std::vector<std::string> hosts;
  auto r = s.call([](proto::Message::Builder m) { m.setListHosts(); });
  for (auto h : r->root<proto::Message>().getHosts()) {
    if (h.getUp()) hosts.push_back(proto::text(h.getName()));
  }
  if (hosts.empty()) throw Error(ErrorCategory::kRetryable, "no host is up (see `ferry hosts`)");
  return hosts;
}

std::string bytesOf(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

void sendFile(Session& s, const std::string& file,
              const std::function<void(proto::Message::Builder)>& request, const std::string& label) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throwErrno("opening " + file);
  struct stat st {};
  ::fstat(fd.get(), &st);
  auto r = s.call(request);
  auto t = r->root<proto::Message>().getStreamTicket();
  proto::StreamOptions so = s.streamOptions();
  so.peer_public_key = proto::text(t.getServerKey());
  proto::ChunkSender tx(s.ctx, proto::text(t.getEndpoint()), bytesOf(t.getToken()), label, so);
  ProgressLine line(onTerminal() && !s.json_out);
  FdSource in(fd.get(), "reading " + file);
  uint64_t sent = copyAll(in, tx, [&](uint64_t done) {
    line.show("send", done, static_cast<uint64_t>(st.st_size), "");
  });
  line.show("verify", sent, 0, "waiting for the host");
  tx.finish();
}

}  // namespace ferry::cli
