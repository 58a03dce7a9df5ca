// Where the orchestrator's PostgreSQL password comes from, and what a
// misconfiguration says (never the password itself).
#include "services/orchestrator/orchestrator_config.h"

#include <stdlib.h>

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/scratch_dir.h"

namespace gyre::orchestrator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class PostgresPasswordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("GYRE_POSTGRES_PASSWORD");
    config_.store = "postgres";
    config_.postgres_dsn = "host=db dbname=gyre user=gyre";
  }
  void TearDown() override { unsetenv("GYRE_POSTGRES_PASSWORD"); }

  std::string WriteFile(const std::string& content) {
    const std::string path = scratch_.path() + "/password";
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  gyre::testing::ScratchDir scratch_{"gyre_config"};
  OrchestratorConfig config_;
};

TEST_F(PostgresPasswordTest, ComesFromTheEnvironment) {
  setenv("GYRE_POSTGRES_PASSWORD", "from-env", 1);
  absl::StatusOr<std::string> password = config_.PostgresPassword();
  ASSERT_TRUE(password.ok()) << password.status();
  EXPECT_EQ(*password, "from-env");
}

TEST_F(PostgresPasswordTest, ComesFromTheFileWithoutItsTrailingNewline) {
  config_.postgres_password_file = WriteFile("from-file\n");
  absl::StatusOr<std::string> password = config_.PostgresPassword();
  ASSERT_TRUE(password.ok()) << password.status();
  EXPECT_EQ(*password, "from-file");
}

TEST_F(PostgresPasswordTest, IsEmptyWhenNotGivenSoLibpqUsesItsOwnSources) {
  absl::StatusOr<std::string> password = config_.PostgresPassword();
  ASSERT_TRUE(password.ok()) << password.status();
  EXPECT_EQ(*password, "");
}

TEST_F(PostgresPasswordTest, BothSourcesAtOnceAreRefusedWithoutQuotingEither) {
  setenv("GYRE_POSTGRES_PASSWORD", "env-secret", 1);
  config_.postgres_password_file = WriteFile("file-secret");
  const absl::Status status = config_.PostgresPassword().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), Not(HasSubstr("secret")));
}

TEST_F(PostgresPasswordTest, AnUnreadableOrEmptyFileIsNamed) {
  config_.postgres_password_file = scratch_.path() + "/missing";
  EXPECT_THAT(config_.PostgresPassword().status().message(), HasSubstr("/missing"));
  config_.postgres_password_file = WriteFile("\n");
  EXPECT_THAT(config_.PostgresPassword().status().message(), HasSubstr("is empty"));
}

TEST_F(PostgresPasswordTest, TheStoreNeedsADsn) {
  EXPECT_TRUE(config_.Validate().ok());
  config_.postgres_dsn.clear();
  EXPECT_THAT(config_.Validate().message(), HasSubstr("postgres_dsn"));
}

}  // namespace
}  // namespace gyre::orchestrator
