#ifndef GYRE_SERVICES_ORCHESTRATOR_EMBEDDED_STATE_STORE_H_
#define GYRE_SERVICES_ORCHESTRATOR_EMBEDDED_STATE_STORE_H_

#include <memory>
#include <string>

#include "prometheus/registry.h"
#include "services/orchestrator/state_store.h"

namespace gyre::orchestrator {

// The embedded durable backend: an append-only event log with group commit
// (one fdatasync per batch, none when `fsync` is false) and snapshots in
// `data_dir`/log (see libs/durable_log/event_log.h). Opening the log (and
// repairing a torn tail) happens in Load, which logs each repair and, with
// `metrics`, exports what it cut (gyre_store_recovered_torn_tail_bytes,
// gyre_store_recovery_repairs). Thread-safe.
std::unique_ptr<StateStore> NewEmbeddedStateStore(const std::string& data_dir, bool fsync,
                                                  prometheus::Registry* metrics = nullptr);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_EMBEDDED_STATE_STORE_H_
