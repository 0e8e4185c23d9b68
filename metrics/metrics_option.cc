#include "metrics/metrics_option.h"

#include "metrics/metrics_server.h"

namespace ferry::metrics {

void addMetricsOption(CLI::App& app, std::string& into) {
  app.add_option("--metrics", into,
                 "serve Prometheus metrics over HTTP at http://ADDR:PORT/metrics (e.g. "
                 "127.0.0.1:9464; port 0: any free port, logged at start). Unauthenticated and "
                 "unencrypted: bind an address only your Prometheus reaches. Default: none "
                 "(docs/metrics.md lists the series)")
      ->type_name("ADDR:PORT")
      ->check(cli::checkedBy([](const std::string& v) { parseListenAddress(v); }));
}

}  // namespace ferry::metrics
