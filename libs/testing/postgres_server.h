#ifndef GYRE_LIBS_TESTING_POSTGRES_SERVER_H_
#define GYRE_LIBS_TESTING_POSTGRES_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/testing/scratch_dir.h"

namespace gyre::testing {

// A real, throwaway PostgreSQL 15 server for tests: Debian's binaries
// (/usr/lib/postgresql/15/bin, package postgresql-15) run `initdb` in a
// scratch directory and serve on a free 127.0.0.1 port and on a unix socket
// in that directory, with fsync on. PostgreSQL refuses to run as root, so
// when the test runs as root the server runs as the unprivileged `postgres`
// user (through runuser) and owns the directory. A missing binary or user is
// an error, never a skip. Stopped (immediate mode) and removed in the
// destructor.
//
// Superuser `gyre` connects over the unix socket without a password;
// TCP connections need the password (`password()`), so tests can check
// what happens to a DSN that carries one. Not thread-safe; the DSNs it
// hands out may be used from any thread.
class PostgresServer {
 public:
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  // The server every test of a process shares: started on first use,
  // stopped at exit. One that cannot start aborts the process with the
  // reason (a failed test, never a skip).
  static PostgresServer& Shared();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // A fresh, empty database ("gyre_test_N"); its name.
  absl::StatusOr<std::string> CreateDatabase();
  absl::Status DropDatabase(const std::string& name);

  // libpq key=value DSN for `database` over the unix socket (no password).
  std::string SocketDsn(const std::string& database) const;
  // libpq key=value DSN for `database` over TCP, without the password.
  std::string TcpDsn(const std::string& database) const;

  // Stops the server as a crash would (pg_ctl stop -m immediate: no
  // checkpoint; the next start recovers from the WAL).
  absl::Status StopImmediately();
  // Starts it again after StopImmediately, on the same port and socket.
  absl::Status Restart();

  int port() const { return port_; }
  const std::string& password() const { return password_; }

 private:
  PostgresServer() = default;
  absl::Status Init();
  absl::Status StartServer();
  // Runs a command to completion; as the server's OS user when asked.
  absl::Status Run(const std::vector<std::string>& argv, const std::string& what,
                   bool as_server_user = true);
  // Runs SQL as the superuser on the `postgres` database.
  absl::Status Exec(const std::string& sql);

  std::unique_ptr<ScratchDir> dir_;
  std::string data_dir_;
  int port_ = 0;
  bool as_postgres_user_ = false;
  bool started_ = false;
  int next_database_ = 0;
  std::string password_;
};

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_POSTGRES_SERVER_H_
