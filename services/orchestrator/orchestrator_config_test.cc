// Where the orchestrator's PostgreSQL password comes from, and what a
// misconfiguration says (never the password itself).
#include "services/orchestrator/orchestrator_config.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
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

TEST_F(PostgresPasswordTest, ShardingNeedsPostgresAndTakesTheProjectionEitherWay) {
  config_.postgres_sharding = true;
  EXPECT_TRUE(config_.postgres_projection) << "on by default, sharded or not";
  EXPECT_TRUE(config_.Validate().ok()) << config_.Validate();
  config_.postgres_projection = false;
  EXPECT_TRUE(config_.Validate().ok()) << config_.Validate();
  config_.store = "embedded";
  EXPECT_THAT(config_.Validate().message(), HasSubstr("postgres_sharding: needs store: postgres"));
}

TEST_F(PostgresPasswordTest, ShardingSettingsAreBounded) {
  config_.postgres_sharding = true;
  config_.postgres_projection = false;
  config_.shard_lease_ttl = absl::Milliseconds(100);
  EXPECT_THAT(config_.Validate().message(), HasSubstr("shard_lease_ttl"));
  config_.shard_lease_ttl = absl::Seconds(2);
  config_.orchestrator_id = "has space";
  EXPECT_THAT(config_.Validate().message(), HasSubstr("orchestrator_id"));
  config_.orchestrator_id = std::string(201, 'a');
  EXPECT_THAT(config_.Validate().message(), HasSubstr("at most 200"));
  config_.orchestrator_id = "orch-1";
  config_.advertised_address = "nohost";
  EXPECT_THAT(config_.Validate().message(), HasSubstr("advertised_address"));
}

TEST(OrchestratorIdentityTest, TheDefaultIdIsStableInAProcessAndNamesHostAndPid) {
  OrchestratorConfig config;
  const std::string id = config.OrchestratorId();
  EXPECT_EQ(id, config.OrchestratorId());
  EXPECT_THAT(id, HasSubstr(absl::StrCat(":", getpid(), ":")));
  config.orchestrator_id = "orch-a";
  EXPECT_EQ(config.OrchestratorId(), "orch-a");
}

TEST(OrchestratorIdentityTest, TheAdvertisedAddressFollowsTheListenAddress) {
  OrchestratorConfig config;
  EXPECT_EQ(config.AdvertisedAddress("127.0.0.1:0", 4321), "127.0.0.1:4321");
  const std::string wildcard = config.AdvertisedAddress("0.0.0.0:7070", 7070);
  EXPECT_THAT(wildcard, Not(HasSubstr("0.0.0.0")));
  EXPECT_THAT(wildcard, ::testing::EndsWith(":7070"));
  config.advertised_address = "orch-0.orch:7070";
  EXPECT_EQ(config.AdvertisedAddress("0.0.0.0:7070", 7070), "orch-0.orch:7070");
}

}  // namespace
}  // namespace gyre::orchestrator
