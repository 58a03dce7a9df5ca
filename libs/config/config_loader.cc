#include "libs/config/config_loader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

extern char** environ;  // NOLINT: POSIX declares it nowhere else

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/nearest_match.h"
#include "libs/common/yaml_bounds.h"

namespace gyre::config {
namespace {

std::string Where(const std::string& path, const YAML::Mark& mark) {
  if (mark.is_null()) return path;
  return absl::StrCat(path, ":", mark.line + 1, ":", mark.column + 1);
}

absl::Status WithContext(const absl::Status& status, absl::string_view where,
                         absl::string_view key) {
  return absl::Status(status.code(), absl::StrCat(where, ": ", key, ": ", status.message()));
}

// Expands ${VAR} in every scalar of `node`, in place.
absl::Status ExpandScalars(YAML::Node node, const VariableLookup& lookup) {
  if (node.IsScalar()) {
    absl::StatusOr<std::string> expanded = ExpandVariables(node.Scalar(), lookup);
    if (!expanded.ok()) return expanded.status();
    node = *expanded;
    return absl::OkStatus();
  }
  if (node.IsSequence()) {
    for (YAML::Node item : node) {
      if (absl::Status status = ExpandScalars(item, lookup); !status.ok()) return status;
    }
  } else if (node.IsMap()) {
    for (auto entry : node) {
      if (absl::Status status = ExpandScalars(entry.second, lookup); !status.ok()) {
        return status;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<YAML::Node> ReadYamlFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    const int error = errno;
    const std::string reason = std::strerror(error);
    const std::string message = absl::StrCat("config file \"", path, "\": ", reason);
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::NotFoundError(message);
  }
  std::stringstream contents;
  contents << file.rdbuf();
  if (absl::Status status = CheckYaml(contents.str(), path, kConfigYamlLimits); !status.ok()) {
    return status;
  }
  try {
    return YAML::Load(contents.str());
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(Where(path, e.mark), ": invalid YAML: ", e.msg));
  }
}

absl::Status Decode(const ConfigSchema::Field& field, const YAML::Node& value) {
  try {
    return field.decode(value);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(e.msg);
  }
}

absl::Status ApplyFile(const ConfigSchema& schema, const ConfigSources& sources) {
  const std::string& path = sources.file_path;
  absl::StatusOr<YAML::Node> root = ReadYamlFile(path);
  if (!root.ok()) return root.status();
  if (root->IsNull()) return absl::OkStatus();  // an empty file sets nothing
  if (!root->IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(path, root->Mark()), ": expected a map of settings at the top level"));
  }
  for (auto entry : *root) {
    const std::string key = entry.first.Scalar();
    const std::string where = Where(path, entry.first.Mark());
    const ConfigSchema::Field* field = schema.Find(key);
    if (field == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown key \"", key, "\"", DidYouMean(key, schema.Keys())));
    }
    YAML::Node value = YAML::Clone(entry.second);
    const std::string value_where = Where(path, entry.second.Mark());
    if (absl::Status status = ExpandScalars(value, sources.environment); !status.ok()) {
      return WithContext(status, value_where, key);
    }
    if (absl::Status status = Decode(*field, value); !status.ok()) {
      return WithContext(status, value_where, key);
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyString(const ConfigSchema::Field& field, const std::string& text,
                         absl::string_view origin) {
  YAML::Node value;
  if (field.structured) {
    if (absl::Status status =
            CheckYaml(text, absl::StrCat(origin, ": ", field.key), kConfigYamlLimits);
        !status.ok()) {
      return status;
    }
    try {
      value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": ", field.key, ": invalid YAML value: ", e.msg));
    }
  } else {
    value = YAML::Node(text);
  }
  if (absl::Status status = Decode(field, value); !status.ok()) {
    return WithContext(status, origin, field.key);
  }
  return absl::OkStatus();
}

// GYRE_* variables that are not settings of a service: read by the CLI,
// the build and the tests, or set by the agent for the tasks it runs.
constexpr absl::string_view kOtherGyreVariables[] = {
    "GYRE_ORCHESTRATOR", "GYRE_BIN_DIR",  "GYRE_BUILD_DIR",    "GYRE_CMAKE_ARGS", "GYRE_SANITIZE",
    "GYRE_EXECUTION_ID", "GYRE_WORKFLOW", "GYRE_TASK_ID",      "GYRE_ATTEMPT",    "GYRE_DATE",
    "GYRE_DATETIME",     "GYRE_OUTPUT",   "GYRE_WFCOMMONS_DIR"};

}  // namespace

std::vector<std::string> UnknownEnvironmentWarnings(
    const ConfigSchema& schema, const std::vector<std::string>& environment_names) {
  std::vector<std::string> valid;
  for (const std::string& key : schema.Keys()) {
    valid.push_back(ConfigSchema::EnvironmentName(key));
    // The PostgreSQL password is given by a file setting or, never as a
    // setting of its own (it would be printed with the configuration), by
    // this variable (libs/postgres/postgres_password.h).
    if (key == "postgres_password_file") valid.emplace_back("GYRE_POSTGRES_PASSWORD");
  }
  std::vector<std::string> warnings;
  for (const std::string& name : environment_names) {
    if (!absl::StartsWith(name, "GYRE_")) continue;
    if (std::find(valid.begin(), valid.end(), name) != valid.end()) continue;
    if (std::find(std::begin(kOtherGyreVariables), std::end(kOtherGyreVariables), name) !=
        std::end(kOtherGyreVariables)) {
      continue;
    }
    warnings.push_back(absl::StrCat(name, " is not a setting of this service and is ignored",
                                    DidYouMean(name, valid)));
  }
  return warnings;
}

absl::StatusOr<CommandLineSettings> ParseSettingsFlags(const ConfigSchema& schema,
                                                       const std::vector<std::string>& args) {
  CommandLineSettings settings;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (!absl::StartsWith(arg, "-") || arg == "-" || arg == "--") {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument \"", arg, "\" (settings are flags such as --config=FILE)"));
    }
    arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
    const size_t equals = arg.find('=');
    const absl::string_view name = arg.substr(0, equals);
    std::optional<std::string> value;
    if (equals != absl::string_view::npos) value = std::string(arg.substr(equals + 1));
    const ConfigSchema::Field* field = schema.Find(name);
    std::string key(name);
    if (field == nullptr && absl::StartsWith(name, "no") && !value.has_value()) {
      // --nofsync: a bool set to false.
      const ConfigSchema::Field* negated = schema.Find(name.substr(2));
      if (negated != nullptr && negated->boolean) {
        settings.flags.push_back({negated->key, "false", absl::StrCat("flag --", name)});
        continue;
      }
    }
    if (field == nullptr && name != "config") {
      std::vector<std::string> names = {"--config"};
      for (const std::string& known : schema.Keys()) names.push_back(absl::StrCat("--", known));
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag --", name, DidYouMean(absl::StrCat("--", name), names), "; see --help"));
    }
    if (!value.has_value()) {
      if (field != nullptr && field->boolean) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (field == nullptr) {
      settings.config_file = *std::move(value);
    } else {
      settings.flags.push_back({key, *std::move(value), absl::StrCat("flag --", name)});
    }
  }
  return settings;
}

std::string SettingsFlagsHelp(const ConfigSchema& schema) {
  std::vector<const ConfigSchema::Field*> fields;
  for (const ConfigSchema::Field& field : schema.fields()) fields.push_back(&field);
  std::sort(fields.begin(), fields.end(),
            [](const auto* a, const auto* b) { return a->key < b->key; });
  std::string help;
  for (const ConfigSchema::Field* field : fields) {
    std::string shown = field->show ? field->show() : "see docs/configuration.md";
    absl::StrAppend(&help, "  --", field->key, field->boolean ? "[=true|false]" : "=VALUE",
                    "\n      ", field->help);
    if (shown.empty() && absl::StrContains(field->help, "(default")) {
      // Empty, and the doc says what that means ("default: host name").
      absl::StrAppend(&help, "\n");
    } else {
      absl::StrAppend(&help, " (default: ", shown.empty() ? "\"\"" : shown, ")\n");
    }
  }
  return help;
}

std::vector<std::string> EnvironmentNames() {
  std::vector<std::string> names;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const absl::string_view text = *entry;
    names.emplace_back(text.substr(0, text.find('=')));
  }
  return names;
}

absl::Status LoadConfig(const ConfigSchema& schema, const ConfigSources& sources) {
  if (!sources.file_path.empty()) {
    if (absl::Status status = ApplyFile(schema, sources); !status.ok()) return status;
  }
  for (const ConfigSchema::Field& field : schema.fields()) {
    const std::string name = ConfigSchema::EnvironmentName(field.key);
    std::optional<std::string> value = sources.environment(name);
    if (!value) continue;
    const std::string origin = absl::StrCat("environment variable ", name);
    if (absl::Status status = ApplyString(field, *value, origin); !status.ok()) return status;
  }
  for (const ConfigOverride& flag : sources.flags) {
    const ConfigSchema::Field* field = schema.Find(flag.key);
    if (field == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(flag.origin, ": unknown key \"", flag.key,
                                                     "\"", DidYouMean(flag.key, schema.Keys())));
    }
    if (absl::Status status = ApplyString(*field, flag.value, flag.origin); !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace gyre::config
