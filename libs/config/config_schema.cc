#include "libs/config/config_schema.h"

#include <algorithm>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace gyre::config {
namespace {

absl::StatusOr<std::string> ScalarText(const YAML::Node& value) {
  if (!value.IsScalar()) {
    return absl::InvalidArgumentError("expected a single value, not a list or map");
  }
  return value.Scalar();
}

}  // namespace

void ConfigSchema::AddString(std::string key, std::string* target, std::string help) {
  AddCustom(
      std::move(key),
      [target](const YAML::Node& value) -> absl::Status {
        absl::StatusOr<std::string> text = ScalarText(value);
        if (!text.ok()) return text.status();
        *target = *std::move(text);
        return absl::OkStatus();
      },
      false, std::move(help), [target] { return *target; });
}

void ConfigSchema::AddAddress(std::string key, std::string* target, std::string help) {
  AddCustom(
      std::move(key),
      [target](const YAML::Node& value) -> absl::Status {
        absl::StatusOr<std::string> text = ScalarText(value);
        if (!text.ok()) return text.status();
        const size_t colon = text->rfind(':');
        uint32_t port = 0;
        if (colon == std::string::npos || colon == 0 ||
            !absl::SimpleAtoi(absl::string_view(*text).substr(colon + 1), &port) || port > 65535) {
          return absl::InvalidArgumentError(absl::StrCat(
              "invalid address \"", *text, "\" (expected host:port, e.g. 0.0.0.0:8080)"));
        }
        *target = *std::move(text);
        return absl::OkStatus();
      },
      false, std::move(help), [target] { return *target; });
}

void ConfigSchema::AddListenAddress(std::string key, std::string* target, std::string help) {
  AddAddress(std::move(key), target, std::move(help));
  fields_.back().listen_address = target;
}

void ConfigSchema::AddInt(std::string key, int64_t* target, int64_t min, int64_t max,
                          std::string help) {
  AddCustom(
      std::move(key),
      [target, min, max](const YAML::Node& value) -> absl::Status {
        absl::StatusOr<std::string> text = ScalarText(value);
        if (!text.ok()) return text.status();
        int64_t parsed = 0;
        if (!absl::SimpleAtoi(*text, &parsed)) {
          return absl::InvalidArgumentError(absl::StrCat("invalid integer \"", *text, "\""));
        }
        if (parsed < min || parsed > max) {
          return absl::InvalidArgumentError(
              absl::StrCat("value ", parsed, " is out of range [", min, ", ", max, "]"));
        }
        *target = parsed;
        return absl::OkStatus();
      },
      false, std::move(help), [target] { return absl::StrCat(*target); });
}

void ConfigSchema::AddBool(std::string key, bool* target, std::string help) {
  AddCustom(
      std::move(key),
      [target](const YAML::Node& value) -> absl::Status {
        absl::StatusOr<std::string> text = ScalarText(value);
        if (!text.ok()) return text.status();
        const std::string lower = absl::AsciiStrToLower(*text);
        if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") {
          *target = true;
        } else if (lower == "false" || lower == "no" || lower == "off" || lower == "0") {
          *target = false;
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat("invalid boolean \"", *text, "\" (expected true or false)"));
        }
        return absl::OkStatus();
      },
      false, std::move(help), [target] { return std::string(*target ? "true" : "false"); });
  fields_.back().boolean = true;
}

void ConfigSchema::AddDuration(std::string key, absl::Duration* target, std::string help) {
  AddCustom(
      std::move(key),
      [target](const YAML::Node& value) -> absl::Status {
        absl::StatusOr<std::string> text = ScalarText(value);
        if (!text.ok()) return text.status();
        absl::Duration parsed;
        if (!absl::ParseDuration(*text, &parsed) || parsed < absl::ZeroDuration() ||
            parsed == absl::InfiniteDuration()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "invalid duration \"", *text, "\" (expected e.g. \"10s\", \"250ms\", \"1h30m\")"));
        }
        *target = parsed;
        return absl::OkStatus();
      },
      false, std::move(help), [target] { return absl::FormatDuration(*target); });
}

void ConfigSchema::AddChoice(std::string key, std::string* target, std::vector<std::string> choices,
                             std::string help) {
  AddCustom(
      std::move(key),
      [target, choices = std::move(choices)](const YAML::Node& value) -> absl::Status {
        absl::StatusOr<std::string> text = ScalarText(value);
        if (!text.ok()) return text.status();
        const std::string lower = absl::AsciiStrToLower(*text);
        if (std::find(choices.begin(), choices.end(), lower) == choices.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("invalid value \"", *text,
                           "\" (expected one of: ", absl::StrJoin(choices, ", "), ")"));
        }
        *target = lower;
        return absl::OkStatus();
      },
      false, std::move(help), [target] { return *target; });
}

void ConfigSchema::AddStringList(std::string key, std::vector<std::string>* target,
                                 std::string help) {
  AddCustom(
      std::move(key),
      [target](const YAML::Node& value) -> absl::Status {
        std::vector<std::string> items;
        if (value.IsScalar() && value.Scalar().empty()) {
          // "" is no items, as null is.
        } else if (value.IsScalar()) {
          // "cpu,gpu" as well as [cpu, gpu]: the form a shell variable takes
          // (GYRE_QUEUES=cpu,gpu). A single item is a list of one.
          for (absl::string_view item : absl::StrSplit(value.Scalar(), ',')) {
            item = absl::StripAsciiWhitespace(item);
            if (item.empty()) {
              return absl::InvalidArgumentError(
                  absl::StrCat("empty item in list \"", value.Scalar(), "\""));
            }
            items.emplace_back(item);
          }
        } else if (value.IsSequence()) {
          for (const YAML::Node& item : value) {
            if (!item.IsScalar()) return absl::InvalidArgumentError("list items must be strings");
            items.push_back(item.Scalar());
          }
        } else if (!value.IsNull()) {
          return absl::InvalidArgumentError("expected a list of strings");
        }
        *target = std::move(items);
        return absl::OkStatus();
      },
      true, std::move(help), [target] { return absl::StrJoin(*target, ","); });
}

void ConfigSchema::AddCustom(std::string key, Decoder decoder, bool structured, std::string help,
                             std::function<std::string()> show) {
  Field field;
  field.key = std::move(key);
  field.help = std::move(help);
  field.decode = std::move(decoder);
  field.structured = structured;
  field.show = std::move(show);
  fields_.push_back(std::move(field));
}

void ConfigSchema::AddAllFrom(const ConfigSchema& other, const std::vector<std::string>& except) {
  for (const Field& field : other.fields_) {
    if (Find(field.key) != nullptr) continue;
    if (std::find(except.begin(), except.end(), field.key) != except.end()) continue;
    fields_.push_back(field);
  }
}

const ConfigSchema::Field* ConfigSchema::Find(absl::string_view key) const {
  for (const Field& field : fields_) {
    if (field.key == key) return &field;
  }
  return nullptr;
}

std::vector<std::string> ConfigSchema::Keys() const {
  std::vector<std::string> keys;
  for (const Field& field : fields_) keys.push_back(field.key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::string ConfigSchema::EnvironmentName(absl::string_view key) {
  return absl::StrCat("GYRE_", absl::AsciiStrToUpper(key));
}

}  // namespace gyre::config
