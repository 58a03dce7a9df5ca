#include "libs/workflow/context_keys.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace gyre::workflow {
namespace {

TEST(ContextKeysTest, PlainNamesAreAccepted) {
  for (const char* key : {"REGION", "_private", "rows", "A1_B2", "PATHS", "MY_PATH", "LD"}) {
    EXPECT_TRUE(ValidateContextKey(key).ok()) << key;
  }
}

TEST(ContextKeysTest, WhatIsNoEnvironmentVariableNameIsRefused) {
  for (const char* key : {"", "1BAD", "A-B", "A=B", "A B", "ü"}) {
    EXPECT_EQ(ValidateContextKey(key).message(),
              std::string("context key \"") + key +
                  "\" is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*, up to "
                  "128 characters)");
  }
  EXPECT_FALSE(ValidateContextKey(std::string(129, 'A')).ok());
  EXPECT_TRUE(ValidateContextKey(std::string(128, 'A')).ok());
}

TEST(ContextKeysTest, WhatChangesTheCodeATaskRunsIsRefused) {
  for (const char* key :
       {"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PATH", "BASH_ENV", "ENV", "SHELLOPTS", "PS4",
        "IFS", "PYTHONPATH", "NODE_OPTIONS", "PERL5OPT", "GLIBC_TUNABLES", "JAVA_TOOL_OPTIONS"}) {
    EXPECT_EQ(ValidateContextKey(key).message(),
              std::string("context key \"") + key +
                  "\" is refused: it changes what code programs load or run; set it in a task's "
                  "env if the workflow needs it");
  }
  EXPECT_TRUE(ValidateContextKey("path").ok()) << "names are case-sensitive";
}

TEST(ContextKeysTest, GyresOwnVariablesAreReserved) {
  EXPECT_EQ(ValidateContextKey("GYRE_OUTPUT").message(),
            "context key \"GYRE_OUTPUT\" is reserved: Gyre sets GYRE_* variables itself");
}

TEST(ContextKeysTest, MapsAreBoundedInEntriesAndValueSize) {
  std::map<std::string, std::string> context;
  for (size_t i = 0; i < kMaxContextEntries; ++i) context["K" + std::to_string(i)] = "v";
  EXPECT_TRUE(ValidateContextMap(context).ok());
  context["ONE_MORE"] = "v";
  EXPECT_EQ(ValidateContextMap(context).message(), "context has 257 entries; at most 256");
  EXPECT_EQ(ValidateContextEntry("BIG", std::string(kMaxContextValueBytes + 1, 'x')).message(),
            "context value of \"BIG\" is 65537 bytes; at most 65536");
  EXPECT_TRUE(ValidateContextEntry("BIG", std::string(kMaxContextValueBytes, 'x')).ok());
}

TEST(ContextKeysTest, MapsAreBoundedInTotalBytes) {
  // Each value within its limit; 16 of them over the total (they all reach
  // a task's environment, which Linux bounds).
  std::map<std::string, std::string> context;
  for (int i = 0; i < 15; ++i) context["K" + std::to_string(i)] = std::string(65536, 'x');
  EXPECT_TRUE(ValidateContextMap(context).ok());
  EXPECT_EQ(ContextBytes(context), 15 * 65536 + 10 * 2 + 5 * 3);
  context["K15"] = std::string(65536, 'x');
  EXPECT_EQ(ValidateContextMap(context).message(),
            "context has 1048614 bytes of keys and values; at most 1048576 (it reaches every "
            "task as its environment, which Linux bounds)");
}

}  // namespace
}  // namespace gyre::workflow
