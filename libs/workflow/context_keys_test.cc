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

TEST(DeclaredContextTest, DeclaredNamesAreTheContextDefaultsAndEveryTasksOutputs) {
  gyre::v1::WorkflowDefinition definition;
  definition.set_name("workflows/etl");
  (*definition.mutable_default_context())["REGION"] = "eu";
  gyre::v1::TaskSpec& extract = *definition.add_tasks();
  extract.set_id("extract");
  extract.add_outputs("ORDERS");
  const DeclaredContext declared(definition);
  EXPECT_TRUE(declared.Declares("REGION"));
  EXPECT_TRUE(declared.Declares("ORDERS"));
  for (const char* undeclared : {"HOME", "GIT_SSH_COMMAND", "PAGER", "EDITOR", "PYTHONWARNINGS",
                                 "MALLOC_CONF", "LOCPATH", "HOSTALIASES", "FOO"}) {
    EXPECT_FALSE(declared.Declares(undeclared)) << undeclared;
  }
  const std::map<std::string, std::string> start = {{"REGION", "us"}, {"HOME", "/tmp"}};
  EXPECT_EQ(CheckStartContextDeclared(start, declared, definition.name()).message(),
            "context key HOME is not declared by workflow etl; declare it under `context:` (or as "
            "a task's `outputs:`)");
  // A child may be given what its parent's workflow declares.
  gyre::v1::WorkflowDefinition parent;
  (*parent.mutable_default_context())["HOME"] = "/srv";
  const DeclaredContext parent_declared(parent);
  EXPECT_TRUE(CheckStartContextDeclared(start, declared, "etl", &parent_declared).ok());

  const std::map<std::string, std::string> outputs = {{"ORDERS", "1"}, {"HOME", "/tmp"}};
  EXPECT_EQ(CheckOutputsDeclared(extract, outputs, /*passthrough=*/false, "$GYRE_OUTPUT").message(),
            "$GYRE_OUTPUT: key \"HOME\" is not among the outputs task \"extract\" declares "
            "(outputs: [ORDERS]); list it under the task's `outputs:` to pass it on");
  EXPECT_TRUE(CheckOutputsDeclared(extract, outputs, /*passthrough=*/true, "$GYRE_OUTPUT").ok());
}

TEST(DeclaredContextTest, PassthroughDeclaresEveryName) {
  gyre::v1::WorkflowDefinition definition;
  definition.set_context_passthrough(true);
  const DeclaredContext declared(definition);
  EXPECT_TRUE(declared.passthrough());
  EXPECT_TRUE(declared.Declares("HOME"));
}

}  // namespace
}  // namespace gyre::workflow
