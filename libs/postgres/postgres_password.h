#ifndef GYRE_LIBS_POSTGRES_POSTGRES_PASSWORD_H_
#define GYRE_LIBS_POSTGRES_POSTGRES_PASSWORD_H_

#include <string>

#include "absl/status/statusor.h"

namespace gyre::postgres {

// The PostgreSQL password a process is given apart from its DSN: the
// environment variable GYRE_POSTGRES_PASSWORD when set, else the content of
// `password_file` (a trailing newline dropped; e.g. a mounted Kubernetes
// secret), else "" (the DSN's own or libpq's: ~/.pgpass, PGPASSWORD). Both
// set, an unreadable, empty or oversized file are errors naming the key,
// never the password. Every service with a `postgres_password_file` key
// reads it through here, so they all take the password the same way.
absl::StatusOr<std::string> ReadPostgresPassword(const std::string& password_file);

}  // namespace gyre::postgres

#endif  // GYRE_LIBS_POSTGRES_POSTGRES_PASSWORD_H_
