#include "cmd/gyre/command_line.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/security/grpc_credentials.h"

namespace gyre::cli {

std::string DefaultOrchestrator() {
  // As TEMPORAL_ADDRESS and ARGO_SERVER: set once per shell, not per command.
  const char* from_environment = std::getenv("GYRE_ORCHESTRATOR");
  if (from_environment != nullptr && from_environment[0] != '\0') return from_environment;
  return std::string(kDefaultOrchestrator);
}

security::TlsConfig CommandLine::DefaultTls() {
  security::TlsConfig tls;
  const auto take = [](const char* name, std::string* value) {
    const char* from_environment = std::getenv(name);
    if (from_environment != nullptr) *value = from_environment;
  };
  take("GYRE_TLS_CA_FILE", &tls.ca_file);
  take("GYRE_TLS_CERT_FILE", &tls.cert_file);
  take("GYRE_TLS_KEY_FILE", &tls.key_file);
  std::string require;
  take("GYRE_REQUIRE_TLS", &require);
  tls.require_tls = require == "true" || require == "1";
  return tls;
}

std::string UnreachableMessage(absl::string_view address, absl::string_view detail) {
  return absl::StrCat("cannot reach the orchestrator at ", address, " (", detail,
                      "); start one with ./scripts/dev or gyre dev, or point --orchestrator or "
                      "GYRE_ORCHESTRATOR at a running one");
}

bool TakeOption(int argc, char** argv, int* i, absl::string_view name, std::string* value) {
  const std::string prefix = absl::StrCat("--", name);
  const absl::string_view arg = argv[*i];
  if (arg == prefix && *i + 1 < argc) {
    *value = argv[++*i];
    return true;
  }
  if (absl::StartsWith(arg, prefix + "=")) {
    *value = std::string(arg.substr(prefix.size() + 1));
    return true;
  }
  return false;
}

absl::StatusOr<CommandLine> ParseCommandLine(int argc, char** argv,
                                             absl::Span<const CommandOption> options) {
  CommandLine parsed;
  for (int i = 2; i < argc; ++i) {
    std::string value;
    if (TakeOption(argc, argv, &i, "orchestrator", &value)) {
      parsed.orchestrator = value;
      continue;
    }
    if (TakeOption(argc, argv, &i, "tls_ca_file", &parsed.tls.ca_file) ||
        TakeOption(argc, argv, &i, "tls_cert_file", &parsed.tls.cert_file) ||
        TakeOption(argc, argv, &i, "tls_key_file", &parsed.tls.key_file)) {
      continue;
    }
    bool taken = false;
    for (const CommandOption& option : options) {
      if (!option.takes_value) {
        if (argv[i] != absl::StrCat("--", option.name)) continue;
        value.clear();
      } else if (!TakeOption(argc, argv, &i, option.name, &value)) {
        continue;
      }
      if (absl::Status status = option.take(value); !status.ok()) return status;
      taken = true;
      break;
    }
    if (taken) continue;
    if (argv[i][0] == '-') {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", argv[i]));
    }
    parsed.positional.emplace_back(argv[i]);
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      security::NewChannel(parsed.orchestrator, parsed.tls);
  if (!channel.ok()) return channel.status();
  parsed.channel = *std::move(channel);
  return parsed;
}

}  // namespace gyre::cli
