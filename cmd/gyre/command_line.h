#ifndef GYRE_CMD_GYRE_COMMAND_LINE_H_
#define GYRE_CMD_GYRE_COMMAND_LINE_H_

#include <grpcpp/channel.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "libs/security/tls_config.h"

namespace gyre::cli {

// Where the subcommands that talk to the orchestrator find it by default:
// where `gyre dev` serves.
inline constexpr absl::string_view kDefaultOrchestrator = "127.0.0.1:50051";

// The orchestrator's address when --orchestrator is not given:
// $GYRE_ORCHESTRATOR if set, else kDefaultOrchestrator.
std::string DefaultOrchestrator();

// The one line said when nothing answers at `address`: what was tried, why
// (`detail`, gRPC's words) and how to start an orchestrator there.
std::string UnreachableMessage(absl::string_view address, absl::string_view detail);

// Takes argv[*i] (and argv[*i + 1] for the spaced form) when it is
// "--name=value" or "--name value", advancing *i past what it took.
bool TakeOption(int argc, char** argv, int* i, absl::string_view name, std::string* value);

// An option of a subcommand besides --orchestrator.
struct CommandOption {
  absl::string_view name;
  // Checks and keeps one occurrence's value; an error says why it is bad.
  std::function<absl::Status(const std::string& value)> take;
  // False for a switch ("--follow"): given alone, `take` gets "".
  bool takes_value = true;
};

// What a subcommand that talks to the orchestrator was given.
struct CommandLine {
  std::string orchestrator = DefaultOrchestrator();
  // TLS to the orchestrator: --tls_ca_file, --tls_cert_file, --tls_key_file
  // (else $GYRE_TLS_CA_FILE, ...; $GYRE_REQUIRE_TLS=true refuses plaintext).
  security::TlsConfig tls = DefaultTls();
  // The channel to `orchestrator` with `tls` (made by ParseCommandLine;
  // it connects at the first call).
  std::shared_ptr<grpc::Channel> channel;
  std::vector<std::string> positional;

  static security::TlsConfig DefaultTls();
};

// Parses argv[2...] (argv[1] is the subcommand): --orchestrator=host:port,
// the --tls_* files, `options` and positional arguments, in any order, and
// makes the channel. InvalidArgument naming the argument when one is not
// expected or its value is bad; the TLS settings' error when they are.
absl::StatusOr<CommandLine> ParseCommandLine(int argc, char** argv,
                                             absl::Span<const CommandOption> options);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_COMMAND_LINE_H_
