#include "metrics/agent_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace ferry::metrics {

namespace {

prometheus::Gauge* gauge(prometheus::Registry& r, const std::string& host, const char* name,
                         const char* help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({{"host", host}});
}

}  // namespace

AgentMetrics::AgentMetrics(const std::string& host)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  cpu_ = gauge(r, host, "ferry_agent_cpu_percent",
               "The host's CPU load as heartbeats report it: the 1-minute load average over the "
               "core count, percent (0..100)");
  memory_used_ = gauge(r, host, "ferry_agent_memory_used_bytes",
                       "The host's memory in use: MemTotal less MemAvailable");
  memory_total_ = gauge(r, host, "ferry_agent_memory_total_bytes", "The host's memory");
  running_ = gauge(r, host, "ferry_agent_containers_running", "Containers running on the host");
  auto& streamed = prometheus::BuildCounter()
                       .Name("ferry_agent_stream_bytes_total")
                       .Help("Bytes of migration, image and import streams, as on the wire "
                             "(after compression), by direction")
                       .Register(r);
  sent_ = &streamed.Add({{"host", host}, {"direction", "sent"}});
  received_ = &streamed.Add({{"host", host}, {"direction", "received"}});
}

AgentMetrics::~AgentMetrics() = default;

void AgentMetrics::load(double cpu_percent, uint64_t memory_used, uint64_t memory_total) {
  cpu_->Set(cpu_percent);
  memory_used_->Set(static_cast<double>(memory_used));
  memory_total_->Set(static_cast<double>(memory_total));
}

void AgentMetrics::containersRunning(size_t n) { running_->Set(static_cast<double>(n)); }

void AgentMetrics::streamed(Direction d, uint64_t bytes) {
  (d == Direction::kSent ? sent_ : received_)->Increment(static_cast<double>(bytes));
}

}  // namespace ferry::metrics
