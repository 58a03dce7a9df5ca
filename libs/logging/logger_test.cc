#include "libs/logging/logger.h"

#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace gyre::logging {
namespace {

TEST(LoggerTest, LineIsOneJsonObjectWithStandardKeys) {
  Init("orchestrator", Level::kInfo);
  const std::string line =
      FormatLine(Level::kWarn, "lease \"expired\"", {{"task_id", "load"}, {"attempt", 2}});
  EXPECT_EQ(line.front(), '{');
  EXPECT_EQ(line.back(), '}');
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find("\"level\":\"warn\""), std::string::npos);
  EXPECT_NE(line.find("\"service\":\"orchestrator\""), std::string::npos);
  EXPECT_NE(line.find("\"msg\":\"lease \\\"expired\\\"\""), std::string::npos);
  EXPECT_NE(line.find("\"task_id\":\"load\""), std::string::npos);
  EXPECT_NE(line.find("\"attempt\":2"), std::string::npos);
  EXPECT_NE(line.find("\"time\":\""), std::string::npos);
}

TEST(LoggerTest, TextLineIsForAPersonAndKeepsControlsOut) {
  Init("orchestrator", Level::kInfo);
  const Field fields[] = {{"task", "load"}, {"attempt", 2}, {"why", "exit code 3"}};
  const std::string line = FormatTextLine(Level::kWarn, "lease expired", fields, /*color=*/false);
  // "12:00:01.250 WARN  orchestrator  lease expired  task=load ..."
  EXPECT_EQ(line.substr(12),
            " WARN  orchestrator  lease expired  task=load  attempt=2  "
            "why=\"exit code 3\"")
      << line;
  const std::string colored = FormatTextLine(Level::kError, "x\033[2Jy", {}, /*color=*/true);
  EXPECT_NE(colored.find("\033[31mERROR\033[0m"), std::string::npos) << colored;
  EXPECT_NE(colored.find("x\\u001b[2Jy"), std::string::npos) << "escaped: " << colored;
  const Field up[] = {{"grpc_port", 50051}, {"data_dir", "/tmp/d"}};
  const std::string announced =
      FormatTextLine(Level::kInfo, "gyre dev is up", up, /*color=*/false, /*announce=*/true);
  EXPECT_NE(announced.find("  ==> gyre dev is up <==\n      grpc_port  50051\n"
                           "      data_dir   /tmp/d"),
            std::string::npos)
      << announced;
}

TEST(LoggerTest, ParseFormatNamesTheChoices) {
  EXPECT_EQ(*ParseFormat("JSON"), Format::kJson);
  EXPECT_EQ(*ParseFormat("text"), Format::kText);
  EXPECT_EQ(*ParseFormat("auto"), Format::kAuto);
  EXPECT_EQ(ParseFormat("yaml").status().message(),
            "invalid log format \"yaml\" (expected auto, json or text)");
}

TEST(LoggerTest, LinesBelowTheLevelAreDropped) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  SetOutputFd(fds[1]);
  Init("test", Level::kWarn);
  Info("hidden");
  Error("shown");
  SetOutputFd(STDERR_FILENO);
  close(fds[1]);
  char buffer[4096];
  const ssize_t n = read(fds[0], buffer, sizeof(buffer));
  close(fds[0]);
  ASSERT_GT(n, 0);
  const std::string output(buffer, static_cast<size_t>(n));
  EXPECT_EQ(output.find("hidden"), std::string::npos);
  EXPECT_NE(output.find("\"msg\":\"shown\""), std::string::npos);
  EXPECT_EQ(output.back(), '\n');
}

TEST(LoggerTest, ParseLevelRejectsUnknownNames) {
  EXPECT_EQ(*ParseLevel("DEBUG"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("warning"), Level::kWarn);
  const auto bad = ParseLevel("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"loud\""), std::string::npos);
}

}  // namespace
}  // namespace gyre::logging
