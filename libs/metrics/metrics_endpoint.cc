#include "libs/metrics/metrics_endpoint.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "libs/common/version.h"
#include "libs/metrics/process_collector.h"
#include "prometheus/gauge.h"

namespace gyre::metrics {

MetricsEndpoint::MetricsEndpoint(std::string service)
    : service_(std::move(service)), registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("gyre_build_info")
      .Help("Always 1; labels carry the service name and the Gyre version.")
      .Register(*registry_)
      .Add({{"service", service_}, {"version", kGyreVersion}})
      .Set(1);
}

MetricsEndpoint::~MetricsEndpoint() = default;

absl::Status MetricsEndpoint::Start(const std::string& address) {
  try {
    // civetweb reports bind failures by throwing; keep that inside this class.
    exposer_ = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
  } catch (const std::exception&) {
    // civetweb's text ("null context when constructing CivetServer") does
    // not say why; a bind failure is what it almost always is.
    return absl::FailedPreconditionError(
        absl::StrCat("metrics_address ", address,
                     ": cannot listen (port in use by another process, or not an address of this "
                     "machine); choose another with --metrics_address"));
  }
  exposer_->RegisterCollectable(registry_);
  process_collector_ = std::make_shared<ProcessCollector>();
  exposer_->RegisterCollectable(process_collector_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? 0 : ports.front();
  return absl::OkStatus();
}

}  // namespace gyre::metrics
