#ifndef GYRE_LIBS_TESTING_FREE_PORT_H_
#define GYRE_LIBS_TESTING_FREE_PORT_H_

#include "absl/status/statusor.h"

namespace gyre::testing {

// A loopback TCP port nobody listens on now (the kernel's pick for port 0),
// for a server whose address must be known before it starts (a PostgreSQL,
// or an orchestrator that agents list before it runs). Another process may
// take it before the server binds: callers retry or accept a rare failure.
absl::StatusOr<int> FreePort();

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_FREE_PORT_H_
