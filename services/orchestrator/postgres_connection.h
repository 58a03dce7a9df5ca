#ifndef GYRE_SERVICES_ORCHESTRATOR_POSTGRES_CONNECTION_H_
#define GYRE_SERVICES_ORCHESTRATOR_POSTGRES_CONNECTION_H_

// libs/postgres over the orchestrator's PostgresStoreOptions, for its
// PostgreSQL users (the state store, the shard store, the shard lease
// manager, the projection).

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/postgres/postgres_connection.h"
#include "services/orchestrator/postgres_store_options.h"

namespace gyre::orchestrator::postgres {

using ::gyre::postgres::GuardAs;
using ::gyre::postgres::IntArrayLiteral;
using ::gyre::postgres::ParseDsn;

// The connection string libpq gets: the DSN with the separately given
// password in place of its own.
inline absl::StatusOr<std::string> ConnectionString(const PostgresStoreOptions& options) {
  return ::gyre::postgres::ConnectionString("postgres state store", options.dsn, options.password);
}

// The password (the separately given one and the DSN's), scrubbed out of
// every error.
inline std::vector<std::string> Secrets(const PostgresStoreOptions& options) {
  return ::gyre::postgres::Secrets(options.dsn, options.password);
}

// GuardAs for the state store.
template <typename Body>
absl::Status Guard(absl::string_view what, const std::string& where,
                   const std::vector<std::string>& secrets, Body&& body) {
  return GuardAs("postgres state store", what, where, secrets, std::forward<Body>(body));
}

}  // namespace gyre::orchestrator::postgres

#endif  // GYRE_SERVICES_ORCHESTRATOR_POSTGRES_CONNECTION_H_
