// The in-memory store passes the StateStore conformance suite.
#include "services/orchestrator/memory_state_store.h"

#include "services/orchestrator/state_store_conformance.h"

namespace gyre::orchestrator {
namespace {

// One shared data set: every store opened over it sees the same records.
class MemoryBackend : public StateStoreBackend {
 public:
  std::unique_ptr<StateStore> Open() override { return NewMemoryStateStore(data_); }

 private:
  std::shared_ptr<MemoryStateStoreData> data_ = NewMemoryStateStoreData();
};

INSTANTIATE_TEST_SUITE_P(Memory, StateStoreConformanceTest,
                         ::testing::Values(StateStoreBackendFactory{
                             "memory", [] { return std::make_unique<MemoryBackend>(); }}),
                         StateStoreConformanceTest::BackendName);

}  // namespace
}  // namespace gyre::orchestrator
