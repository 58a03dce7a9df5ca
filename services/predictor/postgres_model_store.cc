#include "services/predictor/postgres_model_store.h"

#include <unistd.h>
#include <zlib.h>

#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/logging/logger.h"
#include "libs/postgres/postgres_connection.h"

namespace gyre::predictor {
namespace {

constexpr char kComponent[] = "predictor model store";

// One step of the predictor's schema; as the orchestrator's: applied in
// order, each once, recorded in predictor_schema_migrations, never edited
// once released (a change is a new version).
struct ModelMigration {
  int version;
  const char* description;
  const char* sql;
};

constexpr ModelMigration kModelMigrations[] = {
    {1, "predictor_models: the predictor's saved model", R"sql(
CREATE TABLE predictor_models (
  id                bigserial   PRIMARY KEY,  -- save order: the highest is the newest
  saved_at          timestamptz NOT NULL DEFAULT now(),
  saved_by          text        NOT NULL DEFAULT '',  -- host:pid of the predictor that saved it
  observation_count bigint      NOT NULL,  -- the model's observations when saved
  model_bytes       bigint      NOT NULL,  -- length of `model` as saved
  crc               bigint      NOT NULL,  -- CRC-32 (zlib) of `model` as saved
  set_aside         boolean     NOT NULL DEFAULT false,  -- found corrupt: never loaded again
  model             bytea       NOT NULL   -- the predictor's ResourceModel, its own format
);
)sql"},
};

// Advisory lock key: "gyre" in ASCII, then the purpose (1-3 are the
// orchestrator's: its migrations, writer and definitions locks).
constexpr int64_t kModelMigrationLock = 0x67797265'00000004;

int64_t Crc32(absl::string_view bytes) {
  return static_cast<int64_t>(crc32(crc32(0L, Z_NULL, 0),
                                    reinterpret_cast<const Bytef*>(bytes.data()),
                                    static_cast<uInt>(bytes.size())));
}

std::string HostAndPid() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return std::to_string(getpid());
  return absl::StrCat(name, ":", getpid());
}

// Applies the migrations the database lacks, in one transaction under
// pg_advisory_xact_lock: a second predictor starting now waits here, then
// finds them done.
absl::Status ApplyModelMigrations(pqxx::connection& connection, const std::string& where) {
  pqxx::work tx(connection);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kModelMigrationLock);
  tx.exec0(
      "CREATE TABLE IF NOT EXISTS predictor_schema_migrations ("
      "  version integer PRIMARY KEY,"
      "  description text NOT NULL,"
      "  applied_at timestamptz NOT NULL DEFAULT now())");
  const int current =
      tx.exec1("SELECT coalesce(max(version), 0) FROM predictor_schema_migrations")[0].as<int>();
  const int newest = kModelMigrations[std::size(kModelMigrations) - 1].version;
  if (current > newest) {
    return absl::FailedPreconditionError(
        absl::StrCat("the database's predictor schema is at version ", current,
                     ", newer than this Gyre knows (", newest, "): upgrade Gyre"));
  }
  for (const ModelMigration& migration : kModelMigrations) {
    if (migration.version <= current) continue;
    tx.exec0(migration.sql);
    tx.exec_params0(
        "INSERT INTO predictor_schema_migrations (version, description) VALUES ($1, $2)",
        migration.version, std::string(migration.description));
    logging::Info("schema migrated", {{"store", "postgres"},
                                      {"database", where},
                                      {"schema", "predictor"},
                                      {"version", migration.version},
                                      {"description", migration.description}});
  }
  tx.commit();
  return absl::OkStatus();
}

}  // namespace

PostgresModelStore::PostgresModelStore(PostgresModelStoreOptions options, std::string conninfo)
    : options_(std::move(options)),
      conninfo_(std::move(conninfo)),
      where_(postgres::DescribeDsn(options_.dsn)),
      secrets_(postgres::Secrets(options_.dsn, options_.password)),
      saved_by_(HostAndPid()) {}

absl::StatusOr<std::unique_ptr<PostgresModelStore>> PostgresModelStore::Open(
    PostgresModelStoreOptions options) {
  absl::StatusOr<std::string> conninfo =
      postgres::ConnectionString(kComponent, options.dsn, options.password);
  if (!conninfo.ok()) return conninfo.status();
  std::unique_ptr<PostgresModelStore> store(
      new PostgresModelStore(std::move(options), *std::move(conninfo)));
  PostgresModelStore* opened = store.get();
  absl::MutexLock lock(&opened->mu_);
  const std::string& where = opened->where_;
  absl::Status status = opened->Run("migrate the predictor's schema", [&](pqxx::connection& c) {
    return ApplyModelMigrations(c, where);
  });
  if (!status.ok()) return status;
  return store;
}

template <typename Body>
absl::Status PostgresModelStore::Run(absl::string_view what, Body&& body) {
  if (connection_ == nullptr || !connection_->is_open()) {
    std::unique_ptr<pqxx::connection> opened;
    absl::Status status = postgres::GuardAs(kComponent, "connect", where_, secrets_, [&] {
      opened = std::make_unique<pqxx::connection>(conninfo_);
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    connection_ = std::move(opened);
  }
  // The body runs with mu_ held (the caller's); the lambda sees only this
  // pointer, never the guarded member.
  pqxx::connection* connection = connection_.get();
  absl::Status status = postgres::GuardAs(kComponent, what, where_, secrets_,
                                          [&]() -> absl::Status { return body(*connection); });
  if (absl::IsUnavailable(status)) connection_.reset();
  return status;
}

std::string PostgresModelStore::Describe() const {
  return absl::StrCat("postgres ", where_, " table predictor_models");
}

absl::StatusOr<SavedModel> PostgresModelStore::LoadNewest() {
  absl::MutexLock lock(&mu_);
  SavedModel saved;
  std::string corrupt;  // why the newest row is corrupt, if it is
  absl::Status status = Run("load the model", [&](pqxx::connection& c) -> absl::Status {
    pqxx::work tx(c);
    const pqxx::result newest = tx.exec(
        "SELECT id, observation_count, model_bytes, crc, model FROM predictor_models "
        "WHERE NOT set_aside ORDER BY id DESC LIMIT 1");
    if (newest.empty()) return absl::NotFoundError("no saved model");
    saved.version = newest[0][0].as<int64_t>();
    saved.observation_count = newest[0][1].as<int64_t>();
    const int64_t length = newest[0][2].as<int64_t>();
    const int64_t crc = newest[0][3].as<int64_t>();
    {
      const pqxx::binarystring bytes(newest[0][4]);
      saved.model.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    if (static_cast<int64_t>(saved.model.size()) != length) {
      corrupt = absl::StrCat("saved as ", length, " bytes, ", saved.model.size(), " stored");
    } else if (Crc32(saved.model) != crc) {
      corrupt = "checksum mismatch";
    }
    if (!corrupt.empty()) {
      tx.exec_params0("UPDATE predictor_models SET set_aside = true WHERE id = $1", saved.version);
      tx.commit();
    }
    return absl::OkStatus();
  });
  if (absl::IsNotFound(status)) {
    return absl::NotFoundError(absl::StrCat("no saved model in ", Describe()));
  }
  if (!status.ok()) return status;
  if (!corrupt.empty()) {
    return absl::DataLossError(absl::StrCat("saved model ", saved.version, " in ", Describe(),
                                            " is corrupt: ", corrupt, " (set aside)"));
  }
  return saved;
}

absl::Status PostgresModelStore::Save(absl::string_view model, int64_t observation_count) {
  absl::MutexLock lock(&mu_);
  return Run("save the model", [&](pqxx::connection& c) -> absl::Status {
    pqxx::work tx(c);
    tx.exec_params0(
        "INSERT INTO predictor_models (saved_by, observation_count, model_bytes, crc, model) "
        "VALUES ($1, $2, $3, $4, $5)",
        saved_by_, observation_count, static_cast<int64_t>(model.size()), Crc32(model),
        pqxx::binarystring(model.data(), model.size()));
    tx.exec_params0(
        "DELETE FROM predictor_models WHERE id NOT IN "
        "(SELECT id FROM predictor_models ORDER BY id DESC LIMIT $1)",
        options_.keep);
    tx.commit();
    return absl::OkStatus();
  });
}

absl::Status PostgresModelStore::SetAside(int64_t version) {
  absl::MutexLock lock(&mu_);
  return Run("set a model aside", [&](pqxx::connection& c) -> absl::Status {
    pqxx::work tx(c);
    tx.exec_params0("UPDATE predictor_models SET set_aside = true WHERE id = $1", version);
    tx.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<int64_t>> PostgresModelStore::ListVersions() {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> versions;
  absl::Status status = Run("list the models", [&](pqxx::connection& c) -> absl::Status {
    pqxx::read_transaction tx(c);
    for (const pqxx::row& row :
         tx.exec("SELECT id FROM predictor_models WHERE NOT set_aside ORDER BY id")) {
      versions.push_back(row[0].as<int64_t>());
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return versions;
}

}  // namespace gyre::predictor
