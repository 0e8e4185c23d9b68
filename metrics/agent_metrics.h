// An agent's series (docs/metrics.md), each labelled host="NAME":
//   ferry_agent_cpu_percent                  1-minute load over the cores, 0..100
//   ferry_agent_memory_used_bytes            MemTotal less MemAvailable
//   ferry_agent_memory_total_bytes
//   ferry_agent_containers_running
//   ferry_agent_stream_bytes_total{direction}  sent | received: chunk-stream
//                                            payloads (checkpoints, pre-copy,
//                                            images, imports) as on the wire
//
// Thread-safety: load() and containersRunning() from the agent's loop (its
// heartbeat); streamed() from any thread (each stream's own), an atomic
// add. Scrapes read the registry from the metrics server's threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
}  // namespace prometheus

namespace ferry::metrics {

enum class Direction { kSent, kReceived };

class AgentMetrics {
 public:
  explicit AgentMetrics(const std::string& host);
  ~AgentMetrics();
  AgentMetrics(const AgentMetrics&) = delete;
  AgentMetrics& operator=(const AgentMetrics&) = delete;

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  void load(double cpu_percent, uint64_t memory_used, uint64_t memory_total);
  void containersRunning(size_t n);
  void streamed(Direction d, uint64_t bytes);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* cpu_;
  prometheus::Gauge* memory_used_;
  prometheus::Gauge* memory_total_;
  prometheus::Gauge* running_;
  prometheus::Counter* sent_;
  prometheus::Counter* received_;
};

}  // namespace ferry::metrics
