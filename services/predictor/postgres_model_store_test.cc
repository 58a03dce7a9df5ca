// The PostgreSQL model store passes the ModelStore conformance suite on a
// real PostgreSQL 15 (one throwaway server per test process, a fresh
// database per case), applies its migration once when predictors start
// together, and keeps its connection's password out of errors.
#include "services/predictor/postgres_model_store.h"

#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/testing/postgres_server.h"
#include "services/predictor/model_store_conformance.h"

namespace gyre::predictor {
namespace {

gyre::testing::PostgresServer& Server() { return gyre::testing::PostgresServer::Shared(); }

// A fresh database, dropped after the case.
class PostgresBackend : public ModelStoreBackend {
 public:
  PostgresBackend() {
    absl::StatusOr<std::string> name = Server().CreateDatabase();
    EXPECT_TRUE(name.ok()) << name.status();
    if (name.ok()) database_ = *name;
  }
  ~PostgresBackend() override {
    if (!database_.empty()) {
      EXPECT_TRUE(Server().DropDatabase(database_).ok());
    }
  }

  std::unique_ptr<ModelStore> Open() override {
    PostgresModelStoreOptions options;
    options.dsn = Server().SocketDsn(database_);
    options.keep = kKeep;
    absl::StatusOr<std::unique_ptr<PostgresModelStore>> store =
        PostgresModelStore::Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  void CorruptNewest() override {
    Exec(
        "UPDATE predictor_models SET model = set_byte(model, 0, get_byte(model, 0) # 90) "
        "WHERE id = (SELECT max(id) FROM predictor_models)");
  }

  void TruncateNewest() override {
    Exec(
        "UPDATE predictor_models SET model = substring(model from 1 for length(model) - 5) "
        "WHERE id = (SELECT max(id) FROM predictor_models)");
  }

  const std::string& database() const { return database_; }

 private:
  void Exec(const std::string& sql) {
    try {
      pqxx::connection connection(Server().SocketDsn(database_));
      pqxx::work tx(connection);
      const pqxx::result changed = tx.exec(sql);
      tx.commit();
      EXPECT_EQ(changed.affected_rows(), 1u) << sql;
    } catch (const std::exception& e) {
      ADD_FAILURE() << sql << ": " << e.what();
    }
  }

  std::string database_;
};

INSTANTIATE_TEST_SUITE_P(Postgres, ModelStoreConformanceTest,
                         ::testing::Values(ModelStoreBackendFactory{
                             "postgres", [] { return std::make_unique<PostgresBackend>(); }}),
                         ModelStoreConformanceTest::BackendName);

TEST(PostgresModelStoreTest, PredictorsStartingTogetherApplyTheMigrationOnce) {
  PostgresBackend backend;
  std::vector<std::thread> starters;
  std::vector<absl::Status> results(4);
  for (size_t i = 0; i < results.size(); ++i) {
    starters.emplace_back([&, i] {
      PostgresModelStoreOptions options;
      options.dsn = Server().SocketDsn(backend.database());
      results[i] = PostgresModelStore::Open(std::move(options)).status();
    });
  }
  for (std::thread& starter : starters) starter.join();
  for (const absl::Status& result : results) EXPECT_TRUE(result.ok()) << result;
  pqxx::connection connection(Server().SocketDsn(backend.database()));
  pqxx::read_transaction tx(connection);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM predictor_schema_migrations")[0].as<int>(), 1);
}

TEST(PostgresModelStoreTest, PasswordGivenApartConnectsOverTcpAndStaysOutOfErrors) {
  PostgresBackend backend;
  PostgresModelStoreOptions options;
  options.dsn = Server().TcpDsn(backend.database());
  options.password = Server().password();
  absl::StatusOr<std::unique_ptr<PostgresModelStore>> store = PostgresModelStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Save("model bytes", 1).ok());
  EXPECT_FALSE(absl::StrContains((*store)->Describe(), Server().password()));

  options.password = "wrong-secret-471";
  absl::StatusOr<std::unique_ptr<PostgresModelStore>> refused = PostgresModelStore::Open(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "predictor model store"))
      << refused.status();
  EXPECT_FALSE(absl::StrContains(refused.status().message(), "wrong-secret-471"))
      << refused.status();
}

}  // namespace
}  // namespace gyre::predictor
