#include "libs/config/config_loader.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gyre::config {
namespace {

// The typed config a small service would declare.
struct ExampleConfig {
  std::string grpc_address = "0.0.0.0:50051";
  int64_t slots = 4;
  absl::Duration shutdown_grace = absl::Seconds(10);
  std::string log_level = "info";
  std::vector<std::string> queues = {"default"};
  bool fsync = true;
};

class ConfigLoaderTest : public ::testing::Test {
 protected:
  ConfigLoaderTest() {
    schema_.AddAddress("grpc_address", &config_.grpc_address, "gRPC listen address");
    schema_.AddInt("slots", &config_.slots, 1, 1024, "concurrent tasks");
    schema_.AddDuration("shutdown_grace", &config_.shutdown_grace, "drain time");
    schema_.AddChoice("log_level", &config_.log_level, {"debug", "info", "warn", "error"},
                      "minimum log level");
    schema_.AddStringList("queues", &config_.queues, "queues served");
    schema_.AddBool("fsync", &config_.fsync, "fsync the log");
  }

  ~ConfigLoaderTest() override {
    if (!path_.empty()) std::remove(path_.c_str());
  }

  std::string WriteFile(const std::string& contents) {
    char name[] = "/tmp/gyre_config_test_XXXXXX.yaml";
    const int fd = mkstemps(name, 5);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
    std::ofstream(path_) << contents;
    return path_;
  }

  absl::Status Load(const std::string& file, const std::map<std::string, std::string>& env = {},
                    std::vector<ConfigOverride> flags = {}) {
    ConfigSources sources;
    sources.file_path = file;
    sources.environment = [env](absl::string_view name) -> std::optional<std::string> {
      auto it = env.find(std::string(name));
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    sources.flags = std::move(flags);
    return LoadConfig(schema_, sources);
  }

  ExampleConfig config_;
  ConfigSchema schema_;
  std::string path_;
};

TEST_F(ConfigLoaderTest, DefaultsHoldWithoutSources) {
  ASSERT_TRUE(Load("").ok());
  EXPECT_EQ(config_.slots, 4);
  EXPECT_EQ(config_.queues, std::vector<std::string>{"default"});
}

TEST_F(ConfigLoaderTest, FileSetsTypedValues) {
  const absl::Status status =
      Load(WriteFile("grpc_address: 127.0.0.1:7000\nslots: 16\nshutdown_grace: 1500ms\n"
                     "log_level: DEBUG\nqueues: [cpu, gpu]\nfsync: off\n"));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config_.grpc_address, "127.0.0.1:7000");
  EXPECT_EQ(config_.slots, 16);
  EXPECT_EQ(config_.shutdown_grace, absl::Milliseconds(1500));
  EXPECT_EQ(config_.log_level, "debug");
  EXPECT_EQ(config_.queues, (std::vector<std::string>{"cpu", "gpu"}));
  EXPECT_FALSE(config_.fsync);
}

TEST_F(ConfigLoaderTest, EnvironmentOverridesFileAndFlagsOverrideEnvironment) {
  const std::string file = WriteFile("slots: 2\nlog_level: warn\n");
  const absl::Status status = Load(file, {{"GYRE_SLOTS", "8"}, {"GYRE_LOG_LEVEL", "error"}},
                                   {{"log_level", "debug", "flag --log_level"}});
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config_.slots, 8);
  EXPECT_EQ(config_.log_level, "debug");
}

TEST_F(ConfigLoaderTest, StructuredEnvironmentValueIsParsedAsYaml) {
  ASSERT_TRUE(Load("", {{"GYRE_QUEUES", "[a, b]"}}).ok());
  EXPECT_EQ(config_.queues, (std::vector<std::string>{"a", "b"}));
}

TEST_F(ConfigLoaderTest, ACommaSeparatedListIsAListFromEverySource) {
  ASSERT_TRUE(Load("", {{"GYRE_QUEUES", "cpu,gpu"}}).ok());
  EXPECT_EQ(config_.queues, (std::vector<std::string>{"cpu", "gpu"}));
  ASSERT_TRUE(Load("", {}, {{"queues", "io, net ,disk", "flag --queues"}}).ok());
  EXPECT_EQ(config_.queues, (std::vector<std::string>{"io", "net", "disk"}));
  ASSERT_TRUE(Load(WriteFile("queues: a,b\n")).ok());
  EXPECT_EQ(config_.queues, (std::vector<std::string>{"a", "b"}));
  // One item stays a list of one.
  ASSERT_TRUE(Load("", {{"GYRE_QUEUES", "gpu"}}).ok());
  EXPECT_EQ(config_.queues, (std::vector<std::string>{"gpu"}));
}

TEST_F(ConfigLoaderTest, AnEmptyItemInACommaListIsRefused) {
  const absl::Status status = Load("", {{"GYRE_QUEUES", "cpu,,gpu"}});
  EXPECT_EQ(status.message(),
            "environment variable GYRE_QUEUES: queues: empty item in list \"cpu,,gpu\"");
}

TEST_F(ConfigLoaderTest, AnUnknownGyreVariableIsWarnedAboutWithTheNearestName) {
  const std::vector<std::string> warnings =
      UnknownEnvironmentWarnings(schema_, {"HOME", "GYRE_QUEUS", "GYRE_SLOTS", "GYRE_ORCHESTRATOR",
                                           "GYRE_TASK_ID", "GYRE_NOTHING_LIKE_IT"});
  EXPECT_EQ(warnings, (std::vector<std::string>{
                          "GYRE_QUEUS is not a setting of this service and is ignored (did you "
                          "mean \"GYRE_QUEUES\"?)",
                          "GYRE_NOTHING_LIKE_IT is not a setting of this service and is ignored"}));
}

TEST(UnknownEnvironmentWarningsTest, ThePostgresPasswordVariableGoesWithItsFileSetting) {
  std::string file;
  ConfigSchema with_password_file;
  with_password_file.AddString("postgres_password_file", &file, "the password's file");
  EXPECT_TRUE(UnknownEnvironmentWarnings(with_password_file, {"GYRE_POSTGRES_PASSWORD"}).empty());
  ConfigSchema without;
  without.AddString("data_dir", &file, "a directory");
  EXPECT_EQ(UnknownEnvironmentWarnings(without, {"GYRE_POSTGRES_PASSWORD"}).size(), 1u)
      << "a service that reads no password says the variable is ignored";
}

TEST_F(ConfigLoaderTest, EnvironmentNamesAreTheProcessVariables) {
  setenv("GYRE_CONFIG_TEST_VARIABLE", "x=y", 1);
  const std::vector<std::string> names = EnvironmentNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "GYRE_CONFIG_TEST_VARIABLE"), names.end());
  unsetenv("GYRE_CONFIG_TEST_VARIABLE");
}

TEST_F(ConfigLoaderTest, VariablesInFileExpandFromEnvironment) {
  const absl::Status status =
      Load(WriteFile("grpc_address: ${HOST}:${PORT}\n"), {{"HOST", "10.0.0.1"}, {"PORT", "81"}});
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config_.grpc_address, "10.0.0.1:81");
}

TEST_F(ConfigLoaderTest, UnknownKeyNamesFileLineAndSuggestion) {
  const std::string file = WriteFile("slots: 2\ngrpc_adress: x:1\n");
  const absl::Status status = Load(file);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            file + ":2:1: unknown key \"grpc_adress\" (did you mean \"grpc_address\"?)");
}

TEST_F(ConfigLoaderTest, BadDurationNamesKeyAndPosition) {
  const std::string file = WriteFile("shutdown_grace: ten\n");
  const absl::Status status = Load(file);
  EXPECT_EQ(status.message(), file +
                                  ":1:17: shutdown_grace: invalid duration \"ten\" "
                                  "(expected e.g. \"10s\", \"250ms\", \"1h30m\")");
}

TEST_F(ConfigLoaderTest, OutOfRangeIntegerIsRejected) {
  const absl::Status status = Load(WriteFile("slots: 0\n"));
  EXPECT_NE(status.message().find("slots: value 0 is out of range [1, 1024]"), std::string::npos)
      << status;
}

TEST_F(ConfigLoaderTest, BadEnvironmentValueNamesTheVariable) {
  const absl::Status status = Load("", {{"GYRE_SLOTS", "many"}});
  EXPECT_EQ(status.message(), "environment variable GYRE_SLOTS: slots: invalid integer \"many\"");
}

TEST_F(ConfigLoaderTest, BadAddressFlagIsRejected) {
  const absl::Status status = Load("", {}, {{"grpc_address", "nope", "flag --grpc_address"}});
  EXPECT_EQ(status.message(),
            "flag --grpc_address: grpc_address: invalid address \"nope\" "
            "(expected host:port, e.g. 0.0.0.0:8080)");
}

TEST_F(ConfigLoaderTest, MissingFileIsNamed) {
  const absl::Status status = Load("/nonexistent/gyre.yaml");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "config file \"/nonexistent/gyre.yaml\": No such file or directory");
}

TEST_F(ConfigLoaderTest, InvalidYamlNamesPosition) {
  const std::string file = WriteFile("slots: [1, 2\n");
  const absl::Status status = Load(file);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message().rfind(file + ":", 0), 0u) << status;
  EXPECT_NE(status.message().find("invalid YAML"), std::string::npos) << status;
}

TEST_F(ConfigLoaderTest, UndefinedVariableIsAnError) {
  const std::string file = WriteFile("grpc_address: ${NOPE}:1\n");
  const absl::Status status = Load(file);
  EXPECT_EQ(status.message(),
            file + ":1:15: grpc_address: undefined variable \"NOPE\" in \"${NOPE}\"");
}

TEST_F(ConfigLoaderTest, FailedLoadKeepsEarlierValuesTyped) {
  // A rejected value never leaves a half-parsed value behind.
  ASSERT_FALSE(Load(WriteFile("slots: 9x\n")).ok());
  EXPECT_EQ(config_.slots, 4);
}

TEST_F(ConfigLoaderTest, DuplicateKeyInFileNamesBothPlaces) {
  const std::string file = WriteFile("slots: 2\nlog_level: warn\nslots: 3\n");
  const absl::Status status = Load(file);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            absl::StrCat(file, ":3:1: duplicate key \"slots\" (first at ", file, ":1:1)"));
}

TEST_F(ConfigLoaderTest, OversizedOrDeepConfigIsRefusedBeforeLoading) {
  const std::string big = WriteFile("log_level: warn\n# " + std::string(5 << 20, 'x') + "\n");
  const absl::Status status = Load(big);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("at most 4194304 are accepted"), absl::string_view::npos)
      << status;
  const absl::Status deep =
      Load("", {{"GYRE_QUEUES", std::string(100, '[') + std::string(100, ']')}});
  EXPECT_EQ(deep.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(deep.message().find("nested deeper than 32"), absl::string_view::npos) << deep;
}

TEST_F(ConfigLoaderTest, EveryKeyIsAFlagInEachForm) {
  absl::StatusOr<CommandLineSettings> flags =
      ParseSettingsFlags(schema_, {"--slots=8", "--queues", "cpu,gpu", "-shutdown_grace=3s",
                                   "--nofsync", "--config=/etc/gyre.yaml"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->config_file, "/etc/gyre.yaml");
  ConfigSources sources;
  sources.environment = [](absl::string_view) { return std::nullopt; };
  sources.flags = flags->flags;
  ASSERT_TRUE(LoadConfig(schema_, sources).ok());
  EXPECT_EQ(config_.slots, 8);
  EXPECT_EQ(config_.queues, (std::vector<std::string>{"cpu", "gpu"}));
  EXPECT_EQ(config_.shutdown_grace, absl::Seconds(3));
  EXPECT_FALSE(config_.fsync);
  flags = ParseSettingsFlags(schema_, {"--fsync"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->flags.at(0).value, "true");
}

TEST_F(ConfigLoaderTest, AnUnknownFlagOrAPositionalArgumentIsRefused) {
  absl::StatusOr<CommandLineSettings> flags = ParseSettingsFlags(schema_, {"--slot=8"});
  ASSERT_FALSE(flags.ok());
  EXPECT_EQ(flags.status().message(),
            "unknown flag --slot (did you mean \"--slots\"?); see --help");
  flags = ParseSettingsFlags(schema_, {"serve"});
  ASSERT_FALSE(flags.ok());
  EXPECT_TRUE(absl::StrContains(flags.status().message(), "unexpected argument \"serve\""));
  flags = ParseSettingsFlags(schema_, {"--slots"});
  ASSERT_FALSE(flags.ok());
  EXPECT_EQ(flags.status().message(), "flag --slots needs a value");
}

TEST_F(ConfigLoaderTest, HelpListsEveryKeyWithItsDocAndDefault) {
  const std::string help = SettingsFlagsHelp(schema_);
  for (const std::string& key : schema_.Keys()) {
    EXPECT_TRUE(absl::StrContains(help, absl::StrCat("  --", key))) << key << "\n" << help;
  }
  EXPECT_TRUE(absl::StrContains(help, "  --slots=VALUE\n      concurrent tasks (default: 4)\n"))
      << help;
  EXPECT_TRUE(
      absl::StrContains(help, "  --shutdown_grace=VALUE\n      drain time (default: 10s)\n"))
      << help;
  EXPECT_TRUE(absl::StrContains(help, "  --queues=VALUE\n      queues served (default: default)\n"))
      << help;
  EXPECT_TRUE(
      absl::StrContains(help, "  --fsync[=true|false]\n      fsync the log (default: true)\n"))
      << help;
}

}  // namespace
}  // namespace gyre::config
