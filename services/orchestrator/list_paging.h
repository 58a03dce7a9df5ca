#ifndef GYRE_SERVICES_ORCHESTRATOR_LIST_PAGING_H_
#define GYRE_SERVICES_ORCHESTRATOR_LIST_PAGING_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::orchestrator {

// A list's page size: `requested` in [1, max], 0 for `fallback`.
absl::StatusOr<size_t> PageSize(int32_t requested, int32_t fallback, int32_t max);

// Page tokens that say where the next page starts ("p" and a position),
// opaque to clients; `first` is where a list without a token starts and
// `end` bounds what this engine could have handed out.
absl::StatusOr<uint32_t> PagePosition(absl::string_view token, uint32_t first, uint32_t end);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_LIST_PAGING_H_
