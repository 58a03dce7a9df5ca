// The embedded (event log) store passes the StateStore conformance suite,
// with fsync on as in production.
#include "services/orchestrator/embedded_state_store.h"

#include "libs/testing/scratch_dir.h"
#include "services/orchestrator/state_store_conformance.h"

namespace gyre::orchestrator {
namespace {

// One scratch directory, removed after the test.
class EmbeddedBackend : public StateStoreBackend {
 public:
  std::unique_ptr<StateStore> Open() override {
    return NewEmbeddedStateStore(scratch_.path(), /*fsync=*/true);
  }

 private:
  gyre::testing::ScratchDir scratch_{"gyre_store"};
};

INSTANTIATE_TEST_SUITE_P(Embedded, StateStoreConformanceTest,
                         ::testing::Values(StateStoreBackendFactory{
                             "embedded", [] { return std::make_unique<EmbeddedBackend>(); }}),
                         StateStoreConformanceTest::BackendName);

}  // namespace
}  // namespace gyre::orchestrator
