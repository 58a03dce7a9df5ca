#ifndef GYRE_SERVICES_ORCHESTRATOR_STATE_STORE_CONFORMANCE_H_
#define GYRE_SERVICES_ORCHESTRATOR_STATE_STORE_CONFORMANCE_H_

// The one suite every StateStore backend must pass: the contract in
// state_store.h, case by case. A backend's test instantiates it with a
// factory for its backend (see memory_state_store_test.cc):
//
//   INSTANTIATE_TEST_SUITE_P(Memory, StateStoreConformanceTest,
//                            ::testing::Values(StateStoreBackendFactory{
//                                "memory", [] { return std::make_unique<MemoryBackend>(); }}),
//                            StateStoreConformanceTest::BackendName);
//
// BackendName (defined with the cases) also makes the linker keep them.

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "services/orchestrator/state_store.h"

namespace gyre::orchestrator {

// One location of a backend (a shared in-memory data set, a directory, a
// database schema), owned by one test and dropped after it.
class StateStoreBackend {
 public:
  virtual ~StateStoreBackend() = default;
  // Opens a store over this location; opening again after the previous
  // store is dropped is a restart and must see what that store made
  // durable. At most one store is open at a time.
  virtual std::unique_ptr<StateStore> Open() = 0;
};

// How the suite gets a fresh location for each of its cases.
struct StateStoreBackendFactory {
  std::string name;  // the test-name suffix: letters, digits, '_'
  std::function<std::unique_ptr<StateStoreBackend>()> make;
};

// Shown in failure messages instead of the bytes of the struct.
inline void PrintTo(const StateStoreBackendFactory& factory, std::ostream* out) {
  *out << factory.name;
}

class StateStoreConformanceTest : public ::testing::TestWithParam<StateStoreBackendFactory> {
 public:
  // Names the instantiated cases after the backend (Suite/Case/memory).
  static std::string BackendName(const ::testing::TestParamInfo<StateStoreBackendFactory>& info);

 protected:
  void SetUp() override;

  std::unique_ptr<StateStoreBackend> backend_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_STATE_STORE_CONFORMANCE_H_
