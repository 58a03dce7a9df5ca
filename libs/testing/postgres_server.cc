#include "libs/testing/postgres_server.h"

#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/testing/child_process.h"
#include "libs/testing/free_port.h"

namespace gyre::testing {

namespace {

constexpr char kBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr char kRunuser[] = "/usr/sbin/runuser";
constexpr char kUser[] = "postgres";   // the unprivileged OS user when run as root
constexpr char kSuperuser[] = "gyre";  // the database superuser initdb creates

std::string RandomHex(int bytes) {
  std::random_device random;
  std::string out;
  for (int i = 0; i < bytes; ++i)
    absl::StrAppend(&out, absl::Hex(random() & 0xff, absl::kZeroPad2));
  return out;
}

}  // namespace

PostgresServer& PostgresServer::Shared() {
  static const std::unique_ptr<PostgresServer> server = [] {
    absl::StatusOr<std::unique_ptr<PostgresServer>> started = Start();
    if (!started.ok()) {
      std::fprintf(stderr, "the shared PostgreSQL test server did not start: %s\n",
                   started.status().ToString().c_str());
      std::abort();
    }
    return *std::move(started);
  }();
  return *server;
}

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  if (absl::Status status = server->Init(); !status.ok()) return status;
  return server;
}

absl::Status PostgresServer::Run(const std::vector<std::string>& argv, const std::string& what,
                                 bool as_server_user) {
  std::vector<std::string> full;
  if (as_server_user && as_postgres_user_) full = {kRunuser, "-u", kUser, "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(full);
  if (!child.ok()) {
    return absl::Status(child.status().code(), absl::StrCat(what, ": cannot start ", full[0], ": ",
                                                            child.status().message()));
  }
  const std::optional<int> exit = (*child)->WaitForExit(absl::Minutes(3));
  if (!exit.has_value()) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": `", absl::StrJoin(full, " "), "` still running after 3 minutes"));
  }
  if (!WIFEXITED(*exit) || WEXITSTATUS(*exit) != 0) {
    return absl::InternalError(absl::StrCat(what, ": `", absl::StrJoin(full, " "),
                                            "` failed (wait status ", *exit, "):\n",
                                            (*child)->Output()));
  }
  return absl::OkStatus();
}

absl::Status PostgresServer::Init() {
  for (const char* binary : {"initdb", "pg_ctl", "psql"}) {
    const std::string path = absl::StrCat(kBinDir, "/", binary);
    if (access(path.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("PostgreSQL test server: ", path,
                       " is missing; install the Debian package postgresql-15 (scripts/setup)"));
    }
  }
  dir_ = std::make_unique<ScratchDir>("gyre_pg");
  if (dir_->path().empty()) return absl::InternalError("PostgreSQL test server: no scratch dir");
  // Readable by the server's user (it binds its socket here) and by us.
  chmod(dir_->path().c_str(), 0755);
  if (geteuid() == 0) {
    const passwd* user = getpwnam(kUser);
    if (user == nullptr) {
      return absl::FailedPreconditionError(
          "PostgreSQL test server: running as root and there is no `postgres` user to run the "
          "server as (PostgreSQL refuses root); install postgresql-15 (scripts/setup)");
    }
    if (access(kRunuser, X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("PostgreSQL test server: ", kRunuser, " is missing"));
    }
    if (chown(dir_->path().c_str(), user->pw_uid, user->pw_gid) != 0) {
      return absl::InternalError(
          absl::StrCat("PostgreSQL test server: cannot chown ", dir_->path(), " to ", kUser));
    }
    as_postgres_user_ = true;
  }
  data_dir_ = dir_->path() + "/data";
  password_ = RandomHex(12);
  const std::string password_file = dir_->path() + "/pwfile";
  {
    std::ofstream out(password_file);
    out << password_ << "\n";
  }
  chmod(password_file.c_str(), 0644);
  // --no-sync: the initial files of a throwaway cluster need no fsync; the
  // server itself runs with fsync on.
  if (absl::Status status =
          Run({absl::StrCat(kBinDir, "/initdb"), "-D", data_dir_, "-U", kSuperuser,
               "--pwfile=" + password_file, "--auth-local=trust", "--auth-host=scram-sha-256", "-E",
               "UTF8", "--no-locale", "--no-sync"},
              "initdb");
      !status.ok()) {
    return status;
  }
  absl::Status started;
  for (int attempt = 0; attempt < 3 && !started_; ++attempt) {
    absl::StatusOr<int> port = FreePort();
    if (!port.ok()) return port.status();
    port_ = *port;
    started = StartServer();
  }
  return started;
}

absl::Status PostgresServer::StartServer() {
  absl::Status started = Run({absl::StrCat(kBinDir, "/pg_ctl"), "-D", data_dir_, "-l",
                              dir_->path() + "/server.log", "-w", "-t", "120", "-o",
                              absl::StrCat("-p ", port_, " -k ", dir_->path(),
                                           " -c listen_addresses=127.0.0.1 -c fsync=on"
                                           " -c shared_buffers=16MB -c max_connections=40"),
                              "start"},
                             "pg_ctl start");
  if (!started.ok()) {
    std::ifstream log(dir_->path() + "/server.log");
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    return absl::Status(started.code(), absl::StrCat(started.message(), "\nserver log:\n", text));
  }
  started_ = true;
  return absl::OkStatus();
}

absl::Status PostgresServer::StopImmediately() {
  if (!started_) return absl::FailedPreconditionError("PostgreSQL test server: not running");
  absl::Status stopped =
      Run({absl::StrCat(kBinDir, "/pg_ctl"), "-D", data_dir_, "-m", "immediate", "-w", "stop"},
          "pg_ctl stop");
  if (stopped.ok()) started_ = false;
  return stopped;
}

absl::Status PostgresServer::Restart() {
  if (started_) return absl::FailedPreconditionError("PostgreSQL test server: already running");
  return StartServer();
}

PostgresServer::~PostgresServer() {
  if (!started_) return;
  // Immediate: the data is thrown away with the directory.
  (void)Run({absl::StrCat(kBinDir, "/pg_ctl"), "-D", data_dir_, "-m", "immediate", "-w", "stop"},
            "pg_ctl stop");
}

absl::Status PostgresServer::Exec(const std::string& sql) {
  // psql as a client needs no privileges: run it as ourselves.
  return Run({absl::StrCat(kBinDir, "/psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
              SocketDsn("postgres"), "-c", sql},
             "psql", /*as_server_user=*/false);
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase() {
  const std::string name = absl::StrCat("gyre_test_", next_database_++);
  if (absl::Status status = Exec(absl::StrCat("CREATE DATABASE ", name)); !status.ok()) {
    return status;
  }
  return name;
}

absl::Status PostgresServer::DropDatabase(const std::string& name) {
  return Exec(absl::StrCat("DROP DATABASE IF EXISTS ", name, " WITH (FORCE)"));
}

std::string PostgresServer::SocketDsn(const std::string& database) const {
  return absl::StrCat("host=", dir_->path(), " port=", port_, " user=", kSuperuser,
                      " dbname=", database);
}

std::string PostgresServer::TcpDsn(const std::string& database) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=", kSuperuser, " dbname=", database);
}

}  // namespace gyre::testing
