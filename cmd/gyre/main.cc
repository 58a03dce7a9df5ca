// gyre: the command-line entry point.
//   gyre dev [flags]                      run the whole suite in one process
//   gyre run FILE.yaml [--set k=v]...     submit a workflow and follow it
//   gyre schedule TASK... [--set k=v]...  schedule a task library outcome and follow it
//   gyre status|list|logs|cancel|pause|resume ...
//                                         look at and control executions
//                                         (execution_commands.h)
//   gyre validate FILE.yaml [--task_library_dir=DIR]   check a workflow
//   gyre import-wfcommons TRACE.json      convert a WfCommons trace to a workflow
//   gyre version | --version
//   gyre COMMAND --help | -h              a command's flags and defaults
#include <grpcpp/create_channel.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cmd/gyre/analyze_command.h"
#include "cmd/gyre/command_help.h"
#include "cmd/gyre/command_line.h"
#include "cmd/gyre/dev_suite_module.h"
#include "cmd/gyre/execution_commands.h"
#include "cmd/gyre/plan_command.h"
#include "cmd/gyre/run_command.h"
#include "cmd/gyre/terminal_text.h"
#include "libs/common/version.h"
#include "libs/security/join_token.h"
#include "libs/server/huge_page_heap.h"
#include "libs/server/service_main.h"
#include "libs/wfcommons/wfcommons_import.h"
#include "libs/workflow/workflow_parser.h"
#include "services/orchestrator/orchestrator_config.h"
#include "services/orchestrator/postgres_state_store.h"

namespace {

constexpr char kUsage[] =
    "usage: gyre <command> [arguments]\n"
    "commands:\n"
    "  dev [--run=FILE.yaml] [flags]       run the whole suite (six services) in one process\n"
    "  run FILE.yaml [--set key=value]...  submit a workflow and follow it to the end\n"
    "      [--orchestrator=host:port]\n"
    "  schedule TASK... [--set key=value]... [--orchestrator=host:port]\n"
    "                                      schedule an outcome: the task library's TASKs and\n"
    "                                      what they depend on; follow it like run\n"
    "  watch EXECUTION                     follow an execution again (after Ctrl-C), like run\n"
    "  status EXECUTION                    an execution's state, context, each task's attempts\n"
    "  why EXECUTION [TASK]                why tasks wait: dependencies, no matching agent,\n"
    "                                      busy slots, pause, backoff, pool at its max\n"
    "  list [--limit=N] [--workflow=NAME] [--state=STATE[,STATE]...]\n"
    "                                      recent executions, newest first (default 20)\n"
    "  logs EXECUTION [TASK] [--attempt=N] [--follow]\n"
    "                                      stored stdout and stderr (of every task without\n"
    "                                      TASK); --follow tails them live\n"
    "  cancel EXECUTION [--reason=TEXT]    cancel an execution (running tasks are stopped)\n"
    "  pause EXECUTION                     pause: no new tasks start; running ones finish\n"
    "  resume EXECUTION                    resume a paused execution\n"
    "  queues                              queues: depth, running, agents, desired workers\n"
    "  agents                              agents: state, queues, slots, version\n"
    "  library                             the task library's tasks (gyre schedule's targets)\n"
    "  workflows list|show NAME [--version=N]\n"
    "                                      stored workflows; one's context and tasks\n"
    "      (these take --orchestrator=host:port too; EXECUTION is executions/ID or ID)\n"
    "  validate FILE.yaml [--task_library_dir=DIR] [--orchestrator=host:port]\n"
    "                                      check a workflow without running it (against the\n"
    "                                      task library it depends on, if any)\n"
    "  import-wfcommons TRACE.json [--scale=X] [--queue=Q] [--output=FILE]\n"
    "                                      convert a WfCommons trace into a workflow\n"
    "  analyze FILE.yaml|workflows/NAME|executions/ID [--pool QUEUE=MAX]... [--apply=ID,...]\n"
    "                                      the optimizer's analysis: critical path, bottlenecks,\n"
    "                                      recommendations with their simulated effect\n"
    "  plan FILE.yaml [--set KEY=VALUE]... [--predictor=HOST:PORT] [--json]\n"
    "                                      before it runs: each task's predicted duration and\n"
    "                                      memory (p10-p90), critical path, finish time\n"
    "  migrate up|status --postgres_dsn=DSN [--postgres_password_file=FILE]\n"
    "                                      apply or show the PostgreSQL schema's migrations\n"
    "                                      (password: that file or GYRE_POSTGRES_PASSWORD)\n"
    "  hash-token [TOKEN]                  the hash of an agent join token, for the\n"
    "                                      orchestrator's agent_join_token_hashes (TOKEN, else\n"
    "                                      the first line of stdin)\n"
    "  version                             print the version (also --version)\n"
    "  completion bash|zsh                 shell completion (source <(gyre completion bash))\n"
    "`gyre COMMAND --help` lists a command's flags and their defaults. The commands that\n"
    "talk to the orchestrator find it at --orchestrator, else $GYRE_ORCHESTRATOR, else\n"
    "127.0.0.1:50051.\n";

int Usage(const char* problem) {
  std::fprintf(stderr, "gyre: %s\n%s", problem, kUsage);
  return gyre::server::kExitConfigError;
}

int RunDev(int argc, char** argv) {
  gyre::cli::DevSuiteModule module;
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre dev", "dev", "127.0.0.1:50051", "127.0.0.1:9100"}, &module);
}

// What gyre run and gyre schedule take: --set key=value (repeated),
// --orchestrator=host:port, and their positional arguments.
struct FollowArguments {
  gyre::cli::RunOptions options;
  gyre::cli::CommandLine line;
};

// Parses argv[2...] of `command`; an exit code when they are bad.
// `detachable`: the command takes --detach (a flag without a value).
std::optional<int> ParseFollowArguments(const char* command, int argc, char** argv,
                                        FollowArguments* parsed, bool detachable = false) {
  gyre::cli::RunOptions& options = parsed->options;
  const gyre::cli::CommandOption set = {"set", [&options](const std::string& value) {
                                          return gyre::cli::ParseSetFlag(value, &options.context);
                                        }};
  const gyre::cli::CommandOption secret = {"secret", [&options](const std::string& key) {
                                             return gyre::cli::ParseSecretFlag(
                                                 key, &options.secret_context);
                                           }};
  std::vector<char*> kept(argv, argv + argc);
  if (detachable) {
    const auto detach = std::remove_if(kept.begin() + 2, kept.end(), [](const char* arg) {
      return std::string_view(arg) == "--detach";
    });
    options.detach = detach != kept.end();
    kept.erase(detach, kept.end());
  }
  absl::StatusOr<gyre::cli::CommandLine> line =
      gyre::cli::ParseCommandLine(static_cast<int>(kept.size()), kept.data(), {set, secret});
  if (!line.ok()) return Usage(absl::StrCat(command, ": ", line.status().message()).c_str());
  parsed->line = *std::move(line);
  options.orchestrator = parsed->line.orchestrator;
  options.interactive = isatty(STDOUT_FILENO) != 0;
  return std::nullopt;
}

int RunCommand(int argc, char** argv) {
  FollowArguments arguments;
  if (std::optional<int> bad = ParseFollowArguments("run", argc, argv, &arguments, true))
    return *bad;
  const std::vector<std::string>& positional = arguments.line.positional;
  if (positional.empty()) return Usage("run: which workflow file?");
  if (positional.size() > 1) {
    return Usage(absl::StrCat("run: unexpected argument ", positional[1]).c_str());
  }
  arguments.options.workflow_file = positional[0];
  return gyre::cli::RunWorkflow(arguments.line.channel, arguments.options);
}

int ScheduleCommand(int argc, char** argv) {
  FollowArguments arguments;
  if (std::optional<int> bad = ParseFollowArguments("schedule", argc, argv, &arguments, true)) {
    return *bad;
  }
  if (arguments.line.positional.empty()) {
    return Usage("schedule: which task(s) of the task library?");
  }
  if (!arguments.options.secret_context.empty()) {
    return Usage("schedule: --secret is for gyre run (ScheduleOutcome takes no secret context)");
  }
  return gyre::cli::ScheduleOutcome(arguments.line.channel, arguments.line.positional,
                                    arguments.options);
}

// `gyre migrate up|status`: the PostgreSQL store's schema, as the
// orchestrator migrates it at start; for operators who migrate before
// rolling out. Exit 0 done, 1 failed, 2 bad arguments.
int MigrateCommand(int argc, char** argv) {
  std::string action;
  gyre::orchestrator::OrchestratorConfig config;
  config.store = "postgres";
  for (int i = 2; i < argc; ++i) {
    if (gyre::cli::TakeOption(argc, argv, &i, "postgres_dsn", &config.postgres_dsn)) continue;
    if (gyre::cli::TakeOption(argc, argv, &i, "postgres_password_file",
                              &config.postgres_password_file)) {
      continue;
    }
    if (argv[i][0] == '-' || !action.empty()) {
      return Usage(absl::StrCat("migrate: unexpected argument ", argv[i]).c_str());
    }
    action = argv[i];
  }
  if (action != "up" && action != "status") return Usage("migrate: up or status?");
  if (config.postgres_dsn.empty()) return Usage("migrate: --postgres_dsn=DSN is required");
  absl::StatusOr<std::string> password = config.PostgresPassword();
  if (!password.ok()) {
    std::fprintf(stderr, "gyre migrate: %s\n", std::string(password.status().message()).c_str());
    return gyre::server::kExitConfigError;
  }
  gyre::orchestrator::PostgresStoreOptions options;
  options.dsn = config.postgres_dsn;
  options.password = *std::move(password);
  absl::StatusOr<gyre::orchestrator::PostgresSchemaStatus> status =
      action == "up" ? gyre::orchestrator::MigratePostgresSchema(options)
                     : gyre::orchestrator::GetPostgresSchemaStatus(options);
  if (!status.ok()) {
    std::fprintf(stderr, "gyre migrate %s: %s\n", action.c_str(),
                 std::string(status.status().message()).c_str());
    return 1;
  }
  std::printf("%s: schema version %d (this gyre knows up to %d)\n",
              gyre::orchestrator::DescribeDsn(options.dsn).c_str(), status->current_version,
              status->newest_version);
  for (const std::string& step : status->applied) std::printf("applied: %s\n", step.c_str());
  for (const std::string& step : status->pending) std::printf("pending: %s\n", step.c_str());
  if (status->pending.empty()) std::printf("up to date\n");
  return 0;
}

int WatchCommand(int argc, char** argv) {
  FollowArguments arguments;
  if (std::optional<int> bad = ParseFollowArguments("watch", argc, argv, &arguments)) return *bad;
  const std::vector<std::string>& positional = arguments.line.positional;
  if (positional.size() != 1 || positional[0].empty()) {
    return Usage("watch: give one execution (executions/ID or ID)");
  }
  const std::string execution = absl::StartsWith(positional[0], "executions/")
                                    ? positional[0]
                                    : absl::StrCat("executions/", positional[0]);
  return gyre::cli::WatchExecution(arguments.line.channel, execution, arguments.options);
}

int CompletionCommand(int argc, char** argv) {
  const std::string shell = argc == 3 ? argv[2] : "";
  if (shell != "bash" && shell != "zsh") {
    return Usage("completion: which shell? (gyre completion bash, gyre completion zsh)");
  }
  const std::vector<std::string> dev_flags = gyre::cli::DevFlagNames();
  std::fputs(
      (shell == "bash" ? gyre::cli::BashCompletion(dev_flags) : gyre::cli::ZshCompletion(dev_flags))
          .c_str(),
      stdout);
  return 0;
}

int ValidateCommand(int argc, char** argv) {
  std::string file;
  std::string library_dir;
  std::string orchestrator = gyre::cli::DefaultOrchestrator();
  for (int i = 2; i < argc; ++i) {
    if (gyre::cli::TakeOption(argc, argv, &i, "task_library_dir", &library_dir)) continue;
    if (gyre::cli::TakeOption(argc, argv, &i, "orchestrator", &orchestrator)) continue;
    if (argv[i][0] == '-' || !file.empty()) {
      return Usage(absl::StrCat("validate: unexpected argument ", argv[i]).c_str());
    }
    file = argv[i];
  }
  if (file.empty()) return Usage("validate: give one workflow file");
  // Offline: the library the orchestrator would load, when the workflow
  // depends on its tasks.
  std::optional<gyre::v1::WorkflowDefinition> library;
  if (!library_dir.empty()) {
    absl::StatusOr<gyre::v1::WorkflowDefinition> loaded =
        gyre::workflow::LoadTaskLibrary(library_dir);
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n", gyre::cli::TerminalSafe(loaded.status().message()).c_str());
      return gyre::server::kExitConfigError;
    }
    library = *std::move(loaded);
  }
  absl::StatusOr<gyre::v1::WorkflowDefinition> def =
      gyre::workflow::LoadWorkflowFile(file, library ? &*library : nullptr);
  // Without a library directory, a dependency the file does not define may
  // be a task of the running orchestrator's library: checked against it.
  bool checked_remotely = false;
  if (!library && !def.ok() && absl::StrContains(def.status().message(), "unknown dependency")) {
    auto stub = gyre::v1::OrchestratorService::NewStub(
        grpc::CreateChannel(orchestrator, grpc::InsecureChannelCredentials()));
    absl::StatusOr<gyre::v1::WorkflowDefinition> remote =
        gyre::cli::LoadWorkflowFileWithLibrary(*stub, file);
    if (absl::IsUnavailable(remote.status())) {
      std::fprintf(stderr,
                   "%s (if it is a task-library task: --task_library_dir=DIR checks against "
                   "the library's files; the orchestrator at %s, which would have been asked, "
                   "cannot be reached)\n",
                   gyre::cli::TerminalSafe(def.status().message()).c_str(),
                   gyre::cli::TerminalSafe(orchestrator).c_str());
      return gyre::server::kExitConfigError;
    }
    def = std::move(remote);
    checked_remotely = true;
  }
  if (!def.ok()) {
    std::fprintf(stderr, "%s\n", gyre::cli::TerminalSafe(def.status().message()).c_str());
    return gyre::server::kExitConfigError;
  }
  std::printf("%s: ok, workflow %s with %d tasks%s\n", file.c_str(), def->name().c_str() + 10,
              def->tasks_size(),
              checked_remotely ? absl::StrCat(" (with the task library of the orchestrator at ",
                                              gyre::cli::TerminalSafe(orchestrator), ")")
                                     .c_str()
                               : "");
  return 0;
}

int ImportCommand(int argc, char** argv) {
  gyre::wfcommons::ImportOptions options;
  std::string trace_path;
  std::string output_path;
  for (int i = 2; i < argc; ++i) {
    std::string value;
    if (gyre::cli::TakeOption(argc, argv, &i, "scale", &value)) {
      if (!absl::SimpleAtod(value, &options.time_scale)) {
        return Usage(("import-wfcommons: invalid --scale \"" + value + "\"").c_str());
      }
    } else if (gyre::cli::TakeOption(argc, argv, &i, "queue", &value)) {
      options.queue = value;
    } else if (gyre::cli::TakeOption(argc, argv, &i, "output", &value)) {
      output_path = value;
    } else if (gyre::cli::TakeOption(argc, argv, &i, "name", &value)) {
      options.workflow_name = value;
    } else if (argv[i][0] == '-' || !trace_path.empty()) {
      return Usage((std::string("import-wfcommons: unexpected argument ") + argv[i]).c_str());
    } else {
      trace_path = argv[i];
    }
  }
  if (trace_path.empty()) return Usage("import-wfcommons: which trace file?");
  std::ifstream file(trace_path);
  if (!file) {
    std::fprintf(stderr, "gyre import-wfcommons: cannot read \"%s\": %s\n", trace_path.c_str(),
                 std::strerror(errno));
    return gyre::server::kExitConfigError;
  }
  std::stringstream json;
  json << file.rdbuf();
  gyre::wfcommons::ImportSummary summary;
  absl::StatusOr<std::string> yaml =
      gyre::wfcommons::ConvertWfCommonsTrace(json.str(), options, &summary);
  if (!yaml.ok()) {
    std::fprintf(stderr, "gyre import-wfcommons: %s: %s\n", trace_path.c_str(),
                 std::string(yaml.status().message()).c_str());
    return gyre::server::kExitConfigError;
  }
  if (output_path.empty()) {
    std::fputs(yaml->c_str(), stdout);
  } else {
    std::ofstream(output_path) << *yaml;
  }
  std::fprintf(stderr, "imported %d tasks, %d edges, %.1f s of recorded runtime (x %g)\n",
               summary.tasks, summary.edges, summary.recorded_runtime_seconds, options.time_scale);
  return 0;
}

// `gyre hash-token [TOKEN]`: what agent_join_token_hashes holds for a
// token. Read from stdin when not given, so the token stays out of the
// shell's history and the process list.
int HashTokenCommand(int argc, char** argv) {
  if (argc > 3) return Usage("hash-token: one token at most (or give it on stdin)");
  std::string token;
  if (argc == 3) {
    token = argv[2];
  } else {
    std::getline(std::cin, token);
  }
  token = std::string(absl::StripAsciiWhitespace(token));
  if (token.empty()) return Usage("hash-token: which token? (an argument, or a line on stdin)");
  if (token.size() > gyre::security::kMaxJoinTokenBytes) {
    return Usage(absl::StrCat("hash-token: a join token is at most ",
                              gyre::security::kMaxJoinTokenBytes, " bytes")
                     .c_str());
  }
  std::printf("%s\n", gyre::security::HashJoinToken(token).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gyre::server::DisableMutexDeadlockDetection();
  if (argc < 2) return Usage("which command?");
  const std::string command = argv[1];
  // The subcommand becomes argv[0] so flag parsing sees only its flags.
  if (command == "dev") {
    // gyre dev hosts the engine too: see huge_page_heap.h.
    gyre::server::ReexecWithHugePageHeap(argv);
    gyre::server::RetainFreedHeapMemory();
    return RunDev(argc - 1, argv + 1);
  }
  if (command == "help" || command == "--help" || command == "-h") {
    // `gyre help COMMAND` is `gyre COMMAND --help`.
    if (argc > 2) {
      if (std::optional<std::string> help = gyre::cli::CommandHelp(argv[2])) {
        std::fputs(help->c_str(), stdout);
        return 0;
      }
      if (std::string(argv[2]) != "dev") {
        return Usage(absl::StrCat("unknown command \"", argv[2], "\"").c_str());
      }
      char help_flag[] = "--help";
      char* dev_argv[] = {argv[2], help_flag, nullptr};
      return RunDev(2, dev_argv);
    }
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (gyre::cli::AsksForHelp(argc, argv)) {
    if (std::optional<std::string> help = gyre::cli::CommandHelp(command)) {
      std::fputs(help->c_str(), stdout);
      return 0;
    }
  }
  if (command == "version" || command == "--version") {
    std::printf("gyre %s\n", gyre::kGyreVersion);
    return 0;
  }
  if (command == "run") return RunCommand(argc, argv);
  if (command == "schedule") return ScheduleCommand(argc, argv);
  if (command == "watch") return WatchCommand(argc, argv);
  if (command == "completion") return CompletionCommand(argc, argv);
  if (gyre::cli::IsExecutionCommand(command)) return gyre::cli::RunExecutionCommand(argc, argv);
  if (command == "validate") return ValidateCommand(argc, argv);
  if (command == "migrate") return MigrateCommand(argc, argv);
  if (command == "hash-token") return HashTokenCommand(argc, argv);
  if (command == "import-wfcommons") return ImportCommand(argc, argv);
  if (command == "analyze") return gyre::cli::AnalyzeCommand(argc, argv);
  if (command == "plan") return gyre::cli::PlanCommand(argc, argv);
  return Usage(("unknown command \"" + command + "\"").c_str());
}
