// The HTTP endpoint a daemon's metrics are scraped from: Prometheus's text
// format at http://ADDR:PORT/metrics (prometheus-cpp's Exposer over
// civetweb).
//
// Thread-safety: the server answers scrapes on its own threads (two), which
// only read the registries' series -- each series is atomic, each family
// locks itself. Daemon state is never read from them: the daemons set their
// gauges from their own loops. Construct and destroy on one thread.
#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace ferry::metrics {

struct ListenAddress {
  std::string host;  // IPv4, dotted
  int port = 0;      // 0: any free port
};

// "ADDR:PORT" (e.g. 127.0.0.1:9464, 0.0.0.0:0). Throws Error kInvalidInput
// naming what is wrong.
ListenAddress parseListenAddress(const std::string& text);

class MetricsServer {
 public:
  // Binds `address` (parseListenAddress's form) and serves /metrics, empty
  // until a registry is added. Throws Error kInvalidInput for a malformed
  // address, kPermanent naming it when it cannot be bound (taken, not this
  // machine's).
  explicit MetricsServer(const std::string& address);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Its series are served from now on. The server keeps a weak reference:
  // the owner keeps the registry alive as long as it should be served.
  void add(const std::shared_ptr<prometheus::Registry>& registry);
  // The bound port (the kernel's choice for port 0).
  int port() const { return port_; }
  // http://ADDR:PORT/metrics
  std::string url() const;

 private:
  ListenAddress address_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace ferry::metrics
