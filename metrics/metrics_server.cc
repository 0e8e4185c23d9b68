#include "metrics/metrics_server.h"

#include <arpa/inet.h>

#include <charconv>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include "common/error.h"

namespace ferry::metrics {

ListenAddress parseListenAddress(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    throwInvalidInput("metrics address '" + text + "': ADDR:PORT, e.g. 127.0.0.1:9464");
  }
  ListenAddress a{text.substr(0, colon), -1};
  in_addr ip{};
  if (::inet_pton(AF_INET, a.host.c_str(), &ip) != 1) {
    throwInvalidInput("metrics address '" + text + "': '" + a.host +
                      "' is not an IPv4 address (ADDR:PORT, e.g. 127.0.0.1:9464)");
  }
  std::string_view port = std::string_view(text).substr(colon + 1);
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || a.port < 0 ||
      a.port > 65535) {
    throwInvalidInput("metrics address '" + text + "': the port is a number 0..65535 (0: any "
                      "free port)");
  }
  return a;
}

MetricsServer::MetricsServer(const std::string& address) : address_(parseListenAddress(address)) {
  std::string bind = address_.host + ":" + std::to_string(address_.port);
  try {
    // One thread more than the default: Prometheus and a person with curl
    // at once never wait on each other.
    exposer_ = std::make_unique<prometheus::Exposer>(bind, 3);
  } catch (const std::exception& e) {
    // civetweb says only "null context when constructing CivetServer.
    // Possible problem binding to port."
    throw Error(ErrorCategory::kPermanent,
                "cannot serve metrics on " + bind +
                    ": binding it failed (is the port taken, or the address not this "
                    "machine's?): " + e.what());
  }
  std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty()) {
    throw Error(ErrorCategory::kPermanent, "cannot serve metrics on " + bind + ": nothing bound");
  }
  port_ = ports.front();
}

MetricsServer::~MetricsServer() = default;

void MetricsServer::add(const std::shared_ptr<prometheus::Registry>& registry) {
  exposer_->RegisterCollectable(registry);
}

std::string MetricsServer::url() const {
  return "http://" + address_.host + ":" + std::to_string(port_) + "/metrics";
}

}  // namespace ferry::metrics
