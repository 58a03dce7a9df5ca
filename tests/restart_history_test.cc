// Restarts: what a client saw is what a restart recovers, event for event, and dispatch goes on
// after it.
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {}  // namespace
}  // namespace gyre::e2e
