// Rogue agents and many streams: an agent id belongs to one live stream, an agent touches only what
// was leased to it, and memory follows what is live.
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {}  // namespace
}  // namespace gyre::e2e
