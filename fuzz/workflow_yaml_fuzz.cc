// The workflow YAML parser (`gyre validate/run`, the gateway, the task
// library) on arbitrary text: it must return a definition or an error.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "libs/workflow/workflow_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)gyre::workflow::ParseWorkflowYaml(text, "fuzz.yaml");
  return 0;
}
