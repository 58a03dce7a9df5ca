#ifndef GYRE_LIBS_CONFIG_CONFIG_LOADER_H_
#define GYRE_LIBS_CONFIG_CONFIG_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/common/variable_expansion.h"
#include "libs/config/config_schema.h"

namespace gyre::config {

// One value given on the command line, already split into key and value.
struct ConfigOverride {
  std::string key;
  std::string value;
  std::string origin;  // how to name it in errors, e.g. "flag --grpc_address"
};

// Where configuration comes from. Later sources override earlier ones:
// schema defaults < YAML file < GYRE_* environment variables < flags.
struct ConfigSources {
  // YAML file with a top-level map of keys; empty means no file. String
  // values in the file may reference environment variables as ${VAR}
  // ($${ escapes a literal ${).
  std::string file_path;
  // Resolves both GYRE_<KEY> overrides and ${VAR} references.
  VariableLookup environment = EnvironmentLookup();
  std::vector<ConfigOverride> flags;
};

// Applies every source to the schema's targets. Stops at the first problem
// and returns InvalidArgument with a one-line message saying where (file and
// line:column, environment variable, or flag), which key, and why, e.g.
//   gyre.yaml:3:1: unknown key "grpc_adress" (did you mean "grpc_address"?)
// A missing or unreadable file is NotFound / PermissionDenied naming it.
absl::Status LoadConfig(const ConfigSchema& schema, const ConfigSources& sources);

// One warning for each GYRE_* variable in `environment_names` that sets no
// key of `schema` (and is none of the GYRE_* variables Gyre sets or reads
// elsewhere, such as GYRE_ORCHESTRATOR or a task's GYRE_TASK_ID), naming
// the nearest valid variable, e.g.
//   GYRE_QUEUS is not a setting of this service and is ignored (did you mean "GYRE_QUEUES"?)
// A typo in a variable would otherwise silently leave the default.
std::vector<std::string> UnknownEnvironmentWarnings(
    const ConfigSchema& schema, const std::vector<std::string>& environment_names);

// What a service's command line says: every key of its schema is a flag
// (--key=value, --key value, and for a bool --key or --nokey), generated
// from the schema so that no key can lack one; --config=FILE names the
// YAML file.
struct CommandLineSettings {
  std::string config_file;
  std::vector<ConfigOverride> flags;  // in command-line order
};

// Parses `args` (argv without the program name). An unknown flag is
// InvalidArgument naming the nearest flag; so is any positional argument.
absl::StatusOr<CommandLineSettings> ParseSettingsFlags(const ConfigSchema& schema,
                                                       const std::vector<std::string>& args);

// One entry per key of `schema`, sorted, for --help:
//   --lease_timeout=VALUE
//       silence after which an agent is declared dead (default: 10s)
std::string SettingsFlagsHelp(const ConfigSchema& schema);

// The names of the process's environment variables.
std::vector<std::string> EnvironmentNames();

}  // namespace gyre::config

#endif  // GYRE_LIBS_CONFIG_CONFIG_LOADER_H_
