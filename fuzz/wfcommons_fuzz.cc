// `gyre import-wfcommons` on arbitrary JSON: the one trace reader
// (ParseTrace) and the conversion to workflow YAML, which must then be YAML
// that loads.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "libs/wfcommons/wfcommons_import.h"
#include "libs/wfcommons/wfcommons_trace.h"
#include "yaml-cpp/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  (void)gyre::wfcommons::ParseTrace(json);
  gyre::wfcommons::ImportOptions options;
  options.time_scale = 0.01;
  absl::StatusOr<std::string> yaml = gyre::wfcommons::ConvertWfCommonsTrace(json, options);
  if (yaml.ok()) {
    // What the import writes, `gyre run` must be able to read back.
    try {
      (void)YAML::Load(*yaml);
    } catch (const YAML::Exception&) {
      abort();
    }
  }
  return 0;
}
