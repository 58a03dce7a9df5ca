#ifndef GYRE_SERVICES_ORCHESTRATOR_MEMORY_STATE_STORE_H_
#define GYRE_SERVICES_ORCHESTRATOR_MEMORY_STATE_STORE_H_

#include <memory>

#include "services/orchestrator/state_store.h"

namespace gyre::orchestrator {

// Records kept in memory only: for unit tests and for nothing else. The
// backing data is shared, so a store "reopened" from it sees the records
// (what a restart over a durable backend would see). Thread-safe.
struct MemoryStateStoreData;
std::shared_ptr<MemoryStateStoreData> NewMemoryStateStoreData();
std::unique_ptr<StateStore> NewMemoryStateStore(std::shared_ptr<MemoryStateStoreData> data);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_MEMORY_STATE_STORE_H_
