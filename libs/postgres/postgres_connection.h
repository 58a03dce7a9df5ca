#ifndef GYRE_LIBS_POSTGRES_POSTGRES_CONNECTION_H_
#define GYRE_LIBS_POSTGRES_POSTGRES_CONNECTION_H_

// What every PostgreSQL user in Gyre shares (the orchestrator's stores and
// lease manager, the predictor's model store): the connection string with
// the password given apart, the secrets to scrub from errors, a DSN fit for
// logs, and the one place libpqxx's exceptions become an absl::Status.

#include <exception>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"

namespace gyre::postgres {

// The DSN's options, parsed by libpq itself (key=value or URI form).
// nullopt when libpq cannot parse it; its message is not kept, since it may
// quote the DSN and so the password.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseDsn(const std::string& dsn);

// The connection string libpq gets: the DSN's options as libpq parsed
// them, with `password` (when not empty) in place of the DSN's. Multi-host
// lists and target_session_attrs pass through unchanged. An unparsable DSN
// is INVALID_ARGUMENT naming `component`, never quoting the DSN.
absl::StatusOr<std::string> ConnectionString(absl::string_view component, const std::string& dsn,
                                             const std::string& password);

// The passwords (the separately given one and the DSN's), scrubbed out of
// every error.
std::vector<std::string> Secrets(const std::string& dsn, const std::string& password);

// `dsn` with its password (and nothing else) left out, for logs and errors:
// "host=a,b port=5432 dbname=gyre user=gyre". An undecodable DSN gives
// "(unparsable DSN)", never the DSN itself.
std::string DescribeDsn(const std::string& dsn);

// "{1,2,3}": an integer array parameter ($1::int[]), no quoting needed.
template <typename Int>
std::string IntArrayLiteral(const std::vector<Int>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) absl::StrAppend(&out, i == 0 ? "" : ",", values[i]);
  return out + "}";
}

// Runs `body`, turning the exceptions libpqxx throws into a Status that
// says which component failed, where and at what, with the password
// scrubbed out. A lost connection (or a commit whose outcome is unknown)
// is UNAVAILABLE, anything else INTERNAL.
template <typename Body>
absl::Status GuardAs(absl::string_view component, absl::string_view what, const std::string& where,
                     const std::vector<std::string>& secrets, Body&& body) {
  std::string message;
  absl::StatusCode code = absl::StatusCode::kInternal;
  try {
    return body();
  } catch (const pqxx::broken_connection& e) {
    code = absl::StatusCode::kUnavailable;
    message = e.what();
  } catch (const pqxx::in_doubt_error& e) {
    code = absl::StatusCode::kUnavailable;
    message = absl::StrCat("commit outcome unknown: ", e.what());
  } catch (const std::exception& e) {
    message = e.what();
  }
  for (const std::string& secret : secrets) {
    if (!secret.empty()) absl::StrReplaceAll({{secret, "***"}}, &message);
  }
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return absl::Status(code, absl::StrCat(component, " (", where, "): ", what, ": ",
                                         absl::StrReplaceAll(message, {{"\n", " "}})));
}

}  // namespace gyre::postgres

#endif  // GYRE_LIBS_POSTGRES_POSTGRES_CONNECTION_H_
