#include "libs/postgres/postgres_password.h"

#include <cstdlib>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace gyre::postgres {

absl::StatusOr<std::string> ReadPostgresPassword(const std::string& password_file) {
  const char* from_env = std::getenv("GYRE_POSTGRES_PASSWORD");
  if (from_env != nullptr && !password_file.empty()) {
    return absl::InvalidArgumentError(
        "postgres password: both GYRE_POSTGRES_PASSWORD and postgres_password_file are set; "
        "keep one");
  }
  if (from_env != nullptr) return std::string(from_env);
  if (password_file.empty()) return std::string();
  std::ifstream file(password_file, std::ios::binary);
  if (!file) {
    return absl::FailedPreconditionError(
        absl::StrCat("postgres_password_file: cannot read ", password_file));
  }
  // A password is short; a large file is the wrong file.
  constexpr size_t kMaxPasswordBytes = 4096;
  std::string password(kMaxPasswordBytes + 1, '\0');
  file.read(password.data(), static_cast<std::streamsize>(password.size()));
  password.resize(static_cast<size_t>(file.gcount()));
  if (password.size() > kMaxPasswordBytes) {
    return absl::InvalidArgumentError(absl::StrCat("postgres_password_file: ", password_file,
                                                   " is over ", kMaxPasswordBytes,
                                                   " bytes: not a password"));
  }
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  if (password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("postgres_password_file: ", password_file, " is empty"));
  }
  return password;
}

}  // namespace gyre::postgres
