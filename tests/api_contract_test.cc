// The documented API contract, enforced at the edge: names, durations, paging, control of pending
// executions and what context reaches tasks.
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {}  // namespace
}  // namespace gyre::e2e
