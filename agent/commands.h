// The coordinator's commands to this host, carried out on the engine: one
// request message in, what to answer out. Apart from the agent's ZeroMQ
// loop (agent.h) so it can be tested over a fake engine without sockets.
//
// handle() does the quick part on the caller's thread (reading the request,
// checks, claims) and returns the rest as work for a worker thread: the
// agent runs it, tests may call it in place. Migration and import commands
// bind or connect chunk streams on `ctx`; everything else only uses the
// engine.
//
// With keys (AgentOptions::keys), the streams bound here admit only the key
// the coordinator vouched for each (proto::StreamKeys, the context's ZAP
// handler, installed by the constructor: `ctx` may have no other).
//
// Thread-safety: handle() from one thread (the agent's loop); the work it
// returns from any thread, concurrently. `post` is called from workers.
// Ownership: the engine, the context and the busy set outlive this object
// and every piece of work it returned.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "agent/agent_options.h"
#include "agent/busy_containers.h"
#include "agent/transfer.h"
#include "engine/agent_engine.h"
#include "metrics/agent_metrics.h"
#include "protocol/rpc.h"
#include "protocol/vouched_keys.h"

namespace ferry::agent {

class AgentNetwork;

// What to do about one command. Any of the three may be empty.
struct Handled {
  std::optional<proto::Fill> reply;    // sent at once
  std::function<proto::Fill()> work;   // on a worker; its result (or error) is the reply
  std::function<void()> background;    // on a worker, after `reply`; answers nothing itself
};

// Sends an interim message (progress) for request `id`; from any thread.
using PostFn = std::function<void(uint64_t id, proto::Fill fill)>;

// The error reply for `e`, as this host (`host`) reports it.
proto::Fill errorReply(const Error& e, const std::string& host);
// Runs `work`; its exception becomes the error reply (anything but an
// Error as kPermanent), as a worker's does.
proto::Fill replyOf(const std::function<proto::Fill()>& work, const std::string& host);

// A container as heartbeats and replies report it.
void fillContainer(proto::Container::Builder b, const ContainerInfo& c, const std::string& host);

class Commands {
 public:
  Commands(const AgentOptions& opts, AgentEngine& engine, zmq::context_t& ctx,
           BusyContainers& busy, PostFn post);

  // Throws Error for a request refused at once (unknown command, malformed,
  // a container already in transfer); the caller answers with errorReply.
  Handled handle(uint64_t id, proto::Message::Reader m);
  // The container network, routed at each commit (none: not routed here).
  void setNetwork(AgentNetwork* n) { network_ = n; }
  // Where the bytes of its streams are counted (none: not counted); it
  // outlives every stream.
  void setMetrics(metrics::AgentMetrics* m) { metrics_ = m; }

 private:
  ContainerInfo awaitReady(uint64_t id, const std::string& name);
  proto::Fill secretCommand(proto::Message::Secret::Reader s);
  Handled sendImage(proto::Message::SendImage::Reader si);
  proto::Fill commitSource(const std::string& name);
  proto::Fill rollbackSource(const std::string& name);
  proto::Fill discardTarget(const std::string& name, const std::string& origin);
  // Where to send a stream bound here at `bound` (and its CURVE key).
  proto::Fill ticketReply(const std::string& bound) const;
  Handled prepareReceive(proto::Message::PrepareReceive::Reader r);
  Handled sendCheckpointCommand(uint64_t id, proto::Message::SendCheckpoint::Reader r);
  Handled prepareImport(proto::Message::ImportFile::Reader r);
  Handled exportCheckpointCommand(uint64_t id, proto::Message::ExportTo::Reader r);
  proto::StreamOptions streamOptions() const;
  // A receiver's options for a stream only `sender_key` may send (with
  // keys: the Vouch, which the stream's work holds until it ends).
  proto::StreamOptions receiverOptions(const std::string& sender_key,
                                       std::shared_ptr<proto::StreamKeys::Vouch>& vouch);
  // A reply carrying `c`, as this host reports it.
  proto::Fill containerReply(const ContainerInfo& c) const;
  // A send's options: the stream (with the receiver's CURVE key) and
  // progress for request `id`, its "restore" phase shown as `restore_phase`.
  TransferOptions transferOptions(uint64_t id, const std::string& container,
                                  const std::string& server_key, const std::string& restore_phase);

  const AgentOptions& opts_;
  AgentEngine& engine_;
  zmq::context_t& ctx_;
  BusyContainers& busy_;
  PostFn post_;
  AgentNetwork* network_ = nullptr;
  metrics::AgentMetrics* metrics_ = nullptr;
  std::optional<proto::StreamKeys> stream_keys_;  // with keys
};

}  // namespace ferry::agent
