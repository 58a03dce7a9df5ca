#ifndef GYRE_SERVICES_ORCHESTRATOR_POSTGRES_STORE_OPTIONS_H_
#define GYRE_SERVICES_ORCHESTRATOR_POSTGRES_STORE_OPTIONS_H_

#include <string>

#include "absl/time/time.h"

namespace gyre::orchestrator {

// How to reach the PostgreSQL database and how long to wait for it; shared
// by the state store, the shard store, the lease manager and the projection
// (apart from them so that postgres_connection.h needs none of them).
struct PostgresStoreOptions {
  // libpq connection string, key=value or URI form; multi-host lists and
  // target_session_attrs pass through to libpq unchanged.
  std::string dsn;
  // Set (when not empty) as the connection's password, overriding one in
  // `dsn`. Never logged nor put in an error.
  std::string password;
  // How long Load waits for another store's writer lock on the same
  // database (a predecessor still disconnecting) before it gives up.
  absl::Duration writer_lock_wait = absl::Seconds(15);
  // How long the writer keeps reconnecting after losing its connection
  // (appends wait meanwhile, none is lost) before the store fails (and the
  // orchestrator stops, fail-stop). Long enough for a primary failover.
  absl::Duration retry_for = absl::Minutes(2);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_POSTGRES_STORE_OPTIONS_H_
