// Hostile sizes: requests, outputs and names larger or deeper than Gyre's limits get a clear error,
// never a stalled engine or a state a restart cannot load.
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {}  // namespace
}  // namespace gyre::e2e
