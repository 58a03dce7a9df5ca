#include "libs/postgres/postgres_connection.h"

#include <libpq-fe.h>

#include "absl/strings/str_join.h"

namespace gyre::postgres {
namespace {

// A libpq option value quoted for a key=value connection string.
std::string QuoteValue(const std::string& value) {
  return absl::StrCat("'", absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"'", "\\'"}}), "'");
}

}  // namespace

std::optional<std::vector<std::pair<std::string, std::string>>> ParseDsn(const std::string& dsn) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (error != nullptr) PQfreemem(error);
  if (options == nullptr) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> out;
  for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (option->val != nullptr) out.emplace_back(option->keyword, option->val);
  }
  PQconninfoFree(options);
  return out;
}

absl::StatusOr<std::string> ConnectionString(absl::string_view component, const std::string& dsn,
                                             const std::string& password) {
  std::optional<std::vector<std::pair<std::string, std::string>>> parsed = ParseDsn(dsn);
  if (!parsed) {
    return absl::InvalidArgumentError(
        absl::StrCat(component,
                     ": the DSN is neither a libpq key=value string nor a "
                     "postgresql:// URI (its text is not repeated here: it may hold a password)"));
  }
  std::vector<std::string> parts;
  for (const auto& [key, value] : *parsed) {
    if (key == "password" && !password.empty()) continue;
    parts.push_back(absl::StrCat(key, "=", QuoteValue(value)));
  }
  if (!password.empty()) parts.push_back(absl::StrCat("password=", QuoteValue(password)));
  return absl::StrJoin(parts, " ");
}

std::vector<std::string> Secrets(const std::string& dsn, const std::string& password) {
  std::vector<std::string> secrets;
  if (std::optional<std::vector<std::pair<std::string, std::string>>> parsed = ParseDsn(dsn)) {
    for (const auto& [key, value] : *parsed) {
      if (key == "password") secrets.push_back(value);
    }
  }
  secrets.push_back(password);
  return secrets;
}

std::string DescribeDsn(const std::string& dsn) {
  std::optional<std::vector<std::pair<std::string, std::string>>> parsed = ParseDsn(dsn);
  if (!parsed) return "(unparsable DSN)";
  std::vector<std::string> parts;
  for (const char* key : {"host", "hostaddr", "port", "dbname", "user", "target_session_attrs"}) {
    for (const auto& [name, value] : *parsed) {
      if (name == key && !value.empty()) parts.push_back(absl::StrCat(name, "=", value));
    }
  }
  return parts.empty() ? "(libpq defaults)" : absl::StrJoin(parts, " ");
}

}  // namespace gyre::postgres
