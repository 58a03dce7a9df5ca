#ifndef GYRE_SERVICES_PREDICTOR_MODEL_STORE_CONFORMANCE_H_
#define GYRE_SERVICES_PREDICTOR_MODEL_STORE_CONFORMANCE_H_

// The one suite every ModelStore backend must pass: the contract in
// model_store.h, and the predictor starting from (or despite) what the
// store holds. A backend's test instantiates it with a factory for its
// backend (see snapshot_model_store_test.cc):
//
//   INSTANTIATE_TEST_SUITE_P(Snapshot, ModelStoreConformanceTest,
//                            ::testing::Values(ModelStoreBackendFactory{
//                                "snapshot", [] { return std::make_unique<FileBackend>(); }}),
//                            ModelStoreConformanceTest::BackendName);
//
// BackendName (defined with the cases) also makes the linker keep them.

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "services/predictor/model_store.h"

namespace gyre::predictor {

// One location of a backend (a directory, a database), owned by one test
// and dropped after it.
class ModelStoreBackend {
 public:
  // What every backend's stores keep after a save, the new model included.
  static constexpr int kKeep = 2;

  virtual ~ModelStoreBackend() = default;
  // Opens a store over this location keeping kKeep models; opening again
  // after the previous store is dropped is a restart and must see what it
  // saved.
  virtual std::unique_ptr<ModelStore> Open() = 0;
  // Changes one byte of the newest saved model where it is stored, its
  // length unchanged, as a bad disk or a bad restore would.
  virtual void CorruptNewest() = 0;
  // Cuts the newest saved model's stored bytes short by a few bytes.
  virtual void TruncateNewest() = 0;
};

// How the suite gets a fresh location for each of its cases.
struct ModelStoreBackendFactory {
  std::string name;  // the test-name suffix: letters, digits, '_'
  std::function<std::unique_ptr<ModelStoreBackend>()> make;
};

// Shown in failure messages instead of the bytes of the struct.
inline void PrintTo(const ModelStoreBackendFactory& factory, std::ostream* out) {
  *out << factory.name;
}

class ModelStoreConformanceTest : public ::testing::TestWithParam<ModelStoreBackendFactory> {
 public:
  // Names the instantiated cases after the backend (Suite/Case/snapshot).
  static std::string BackendName(const ::testing::TestParamInfo<ModelStoreBackendFactory>& info);

 protected:
  void SetUp() override;

  std::unique_ptr<ModelStoreBackend> backend_;
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_MODEL_STORE_CONFORMANCE_H_
