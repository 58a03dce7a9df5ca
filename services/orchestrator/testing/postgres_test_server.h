#ifndef GYRE_SERVICES_ORCHESTRATOR_TESTING_POSTGRES_TEST_SERVER_H_
#define GYRE_SERVICES_ORCHESTRATOR_TESTING_POSTGRES_TEST_SERVER_H_

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "libs/testing/postgres_server.h"
#include "services/orchestrator/postgres_state_store.h"

namespace gyre::orchestrator::testing {

// The real PostgreSQL 15 every case of a test process shares.
inline gyre::testing::PostgresServer& SharedPostgresServer() {
  return gyre::testing::PostgresServer::Shared();
}

// A fresh database on the shared server, dropped when it goes.
class ScratchDatabase {
 public:
  ScratchDatabase() {
    absl::StatusOr<std::string> name = SharedPostgresServer().CreateDatabase();
    EXPECT_TRUE(name.ok()) << name.status();
    if (name.ok()) name_ = *name;
  }
  ~ScratchDatabase() {
    if (!name_.empty()) {
      EXPECT_TRUE(SharedPostgresServer().DropDatabase(name_).ok());
    }
  }
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;

  std::string dsn() const { return SharedPostgresServer().SocketDsn(name_); }
  PostgresStoreOptions options() const {
    PostgresStoreOptions options;
    options.dsn = dsn();
    return options;
  }

 private:
  std::string name_;
};

}  // namespace gyre::orchestrator::testing

#endif  // GYRE_SERVICES_ORCHESTRATOR_TESTING_POSTGRES_TEST_SERVER_H_
