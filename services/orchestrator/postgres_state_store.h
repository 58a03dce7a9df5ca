#ifndef GYRE_SERVICES_ORCHESTRATOR_POSTGRES_STATE_STORE_H_
#define GYRE_SERVICES_ORCHESTRATOR_POSTGRES_STATE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/orchestrator/postgres_store_options.h"
#include "services/orchestrator/state_store.h"

namespace gyre::orchestrator {

// The PostgreSQL backend: records in `state_records(position, record)`,
// snapshots in `snapshots(position, snapshot)`, the schema created and
// upgraded by versioned migrations (`schema_migrations`) at Load, under an
// advisory lock so that orchestrators starting together do not race. Append
// queues; one writer thread commits whatever is queued in one transaction
// (group commit) and completes the callbacks in order; a lost connection is
// retried (options.retry_for) before it fails the store. Load also takes a
// session advisory lock that keeps a second store off the same database
// until shards exist (issue 21). Thread-safe.
std::unique_ptr<StateStore> NewPostgresStateStore(PostgresStoreOptions options);

// A database's schema against the migrations this binary carries.
struct PostgresSchemaStatus {
  int current_version = 0;           // 0: no Gyre schema yet
  int newest_version = 0;            // the newest this binary knows
  std::vector<std::string> pending;  // "2: description", in the order applied
  // "1: description (applied 2026-01-02T03:04:05Z)", oldest first.
  std::vector<std::string> applied;
};

// For `gyre migrate status`: reads the schema's version; changes nothing.
absl::StatusOr<PostgresSchemaStatus> GetPostgresSchemaStatus(const PostgresStoreOptions& options);

// For `gyre migrate up`: applies the pending migrations as a store's Load
// does at start (under the same advisory lock); returns the status after.
absl::StatusOr<PostgresSchemaStatus> MigratePostgresSchema(const PostgresStoreOptions& options);

// Applies the pending migrations up to `version` only (0: all of them). A
// migration's test starts from the version before it, puts data in, then
// migrates to it.
absl::StatusOr<PostgresSchemaStatus> MigratePostgresSchemaTo(const PostgresStoreOptions& options,
                                                             int version);

// `dsn` with its password (and nothing else) left out, for logs and errors:
// "host=a,b port=5432 dbname=gyre user=gyre". An undecodable DSN gives
// "(unparsable DSN)", never the DSN itself.
std::string DescribeDsn(const std::string& dsn);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_POSTGRES_STATE_STORE_H_
