// gyre: the command-line entry point.
//   gyre dev [flags]   run the whole suite in one process
//   gyre version       print the version
#include <cstdio>
#include <cstring>

#include "cmd/gyre/dev_suite_module.h"
#include "libs/common/version.h"
#include "libs/server/service_main.h"

ABSL_FLAG(std::string, data_dir, "", "directory of the embedded durable store (gyre dev)");
ABSL_FLAG(std::string, http_address, "", "REST/WebSocket listen address (gyre dev)");
ABSL_FLAG(std::string, agent_slots, "", "task slots of the embedded agent (gyre dev)");

namespace {

constexpr char kUsage[] =
    "usage: gyre <command> [flags]\n"
    "commands:\n"
    "  dev       run the whole suite (all six services) in one process\n"
    "  version   print the version\n"
    "Run 'gyre dev --help' for the flags of dev.\n";

int RunDev(int argc, char** argv) {
  gyre::cli::DevSuiteModule module;
  return gyre::server::RunServiceMain(argc, argv,
                                      {"gyre dev",
                                       "dev",
                                       "127.0.0.1:50051",
                                       "127.0.0.1:9100",
                                       {{"data_dir", &FLAGS_data_dir},
                                        {"http_address", &FLAGS_http_address},
                                        {"agent_slots", &FLAGS_agent_slots}}},
                                      &module);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return gyre::server::kExitConfigError;
  }
  const char* command = argv[1];
  if (std::strcmp(command, "dev") == 0) {
    // The subcommand becomes argv[0] so flag parsing sees only its flags.
    return RunDev(argc - 1, argv + 1);
  }
  if (std::strcmp(command, "version") == 0) {
    std::printf("gyre %s\n", gyre::kGyreVersion);
    return 0;
  }
  if (std::strcmp(command, "help") == 0 || std::strcmp(command, "--help") == 0) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "gyre: unknown command \"%s\"\n%s", command, kUsage);
  return gyre::server::kExitConfigError;
}
