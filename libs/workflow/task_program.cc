#include "libs/workflow/task_program.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace gyre::workflow {

std::string TaskProgram(const gyre::v1::TaskSpec& spec) {
  if (spec.builtin().kind() != gyre::v1::BuiltinExecutor::KIND_UNSPECIFIED) {
    return absl::StrCat(
        "builtin:",
        absl::AsciiStrToLower(gyre::v1::BuiltinExecutor::Kind_Name(spec.builtin().kind())));
  }
  if (spec.command().empty()) return "";
  absl::string_view first = spec.command(0);
  if (spec.shell()) {
    first = absl::StripLeadingAsciiWhitespace(first);
    first = first.substr(0, std::min(first.size(), first.find_first_of(" \t\n")));
  }
  const size_t slash = first.rfind('/');
  return std::string(slash == absl::string_view::npos ? first : first.substr(slash + 1));
}

}  // namespace gyre::workflow
