// Bounds on YAML text before yaml-cpp builds a node tree from it.
//
// yaml-cpp keeps every node as a shared, heap-allocated object of a few
// hundred bytes: an 11.8 MB workflow of 200,000 tasks took 948 MB to load.
// CheckYaml reads the text once as a stream of events (no tree, memory of
// the nesting depth and the keys of the open maps only) and refuses it
// before YAML::Load when it is too large, holds too many nodes (an alias
// counts as the nodes it repeats, so "billion laughs" is refused too) or is
// nested too deep; it also refuses a mapping that names a key twice, which
// YAML::Load silently accepts (the first value wins), naming both places.
#ifndef GYRE_LIBS_COMMON_YAML_BOUNDS_H_
#define GYRE_LIBS_COMMON_YAML_BOUNDS_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gyre {

struct YamlLimits {
  // The text itself, in bytes.
  size_t max_bytes = 16 * 1024 * 1024;
  // Scalars, sequences and maps (keys included), with aliases expanded.
  // yaml-cpp takes about 590 bytes per node (1,000,000 nodes: 590 MB), so
  // this is what bounds its memory.
  int64_t max_nodes = 1'500'000;
  // Sequences and maps nested in one another.
  int max_depth = 64;
};

// The limits of a workflow file (`gyre validate/run`, the gateway, the
// orchestrator's task library): 16 MiB and 1,500,000 nodes hold a
// 100,000-task workflow (the task limit, libs/workflow/workflow_graph.h) of
// up to 15 nodes a task (`{id: a, command: [x, y], depends_on: [b]}` is 10)
// and keep yaml-cpp under about 900 MB.
inline constexpr YamlLimits kWorkflowYamlLimits{};
// A service's config file or a structured GYRE_* value: settings, not data.
inline constexpr YamlLimits kConfigYamlLimits{4 * 1024 * 1024, 200'000, 32};

// OK when `text` is within `limits` and no mapping repeats a key; otherwise
// INVALID_ARGUMENT "source:line:col: ..." naming the limit, or both places
// of a repeated key. Malformed YAML is left for YAML::Load to report. Only
// the first document is checked: it is all YAML::Load reads.
absl::Status CheckYaml(absl::string_view text, absl::string_view source, const YamlLimits& limits);

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_YAML_BOUNDS_H_
