#include "libs/common/variable_expansion.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace gyre {
namespace {

bool IsValidName(absl::string_view name) {
  if (name.empty()) return false;
  if (!absl::ascii_isalpha(name[0]) && name[0] != '_') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> ExpandVariables(absl::string_view text, const VariableLookup& lookup) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t dollar = text.find('$', i);
    if (dollar == absl::string_view::npos) {
      absl::StrAppend(&out, text.substr(i));
      break;
    }
    absl::StrAppend(&out, text.substr(i, dollar - i));
    if (text.substr(dollar, 3) == "$${") {
      out.append("${");
      i = dollar + 3;
      continue;
    }
    if (text.substr(dollar, 2) != "${") {
      out.push_back('$');
      i = dollar + 1;
      continue;
    }
    const size_t close = text.find('}', dollar + 2);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("unterminated variable reference \"", text.substr(dollar, 20),
                       "\" (missing \"}\"; write \"$${\" for a literal \"${\")"));
    }
    const absl::string_view name = text.substr(dollar + 2, close - dollar - 2);
    if (!IsValidName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid variable name \"", name, "\" in \"${", name, "}\""));
    }
    std::optional<std::string> value = lookup(name);
    if (!value) {
      return absl::InvalidArgumentError(
          absl::StrCat("undefined variable \"", name, "\" in \"${", name, "}\""));
    }
    out.append(*value);
    i = close + 1;
  }
  return out;
}

VariableLookup EnvironmentLookup() {
  return [](absl::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

}  // namespace gyre
