#ifndef GYRE_LIBS_METRICS_METRICS_ENDPOINT_H_
#define GYRE_LIBS_METRICS_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace gyre::metrics {

// The Prometheus /metrics endpoint of one process, on its own port. Exposes
// the process's registry (services add their metrics to it), the standard
// process metrics and gyre_build_info{service,version}. Thread-safe after
// Start(): prometheus-cpp metrics may be updated from any thread.
class MetricsEndpoint {
 public:
  // `service` labels gyre_build_info; the registry exists from construction
  // so services can create their metrics before the endpoint listens.
  explicit MetricsEndpoint(std::string service);
  ~MetricsEndpoint();

  // Starts serving GET /metrics on `address` ("host:port"; port 0 picks a
  // free one). Fails with Unavailable naming the address when it cannot bind.
  absl::Status Start(const std::string& address);

  // The bound port (after Start).
  int port() const { return port_; }
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }

 private:
  std::string service_;
  std::shared_ptr<prometheus::Registry> registry_;
  // The exposer holds collectables by weak_ptr; these keep them alive.
  std::shared_ptr<prometheus::Collectable> process_collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace gyre::metrics

#endif  // GYRE_LIBS_METRICS_METRICS_ENDPOINT_H_
