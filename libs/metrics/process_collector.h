#ifndef GYRE_LIBS_METRICS_PROCESS_COLLECTOR_H_
#define GYRE_LIBS_METRICS_PROCESS_COLLECTOR_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace gyre::metrics {

// Exports the standard Prometheus process metrics (process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_start_time_seconds, process_open_fds, process_max_fds,
// process_threads) read from /proc/self at scrape time. prometheus-cpp does
// not ship these; the names match the other client libraries' so standard
// dashboards work. Thread-safe: Collect() only reads /proc.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace gyre::metrics

#endif  // GYRE_LIBS_METRICS_PROCESS_COLLECTOR_H_
