#ifndef GYRE_CMD_GYRE_RUN_COMMAND_H_
#define GYRE_CMD_GYRE_RUN_COMMAND_H_

#include <grpcpp/channel.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"

namespace gyre::cli {

// What `gyre run` submits and how it reports.
struct RunOptions {
  std::string workflow_file;
  std::map<std::string, std::string> context;  // from --set key=value
  // From --secret KEY: the value of gyre's own $KEY (never on the command
  // line, where `ps` shows it), sent as StartExecutionRequest.secret_context.
  std::map<std::string, std::string> secret_context;
  // A progress bar redrawn in place (terminal) or one line per task change.
  bool interactive = false;
  std::FILE* out = stdout;
  // Print the execution once it is started and exit 0, without following
  // it (gyre watch follows it later).
  bool detach = false;
  // Where the channel leads, for the message when nothing answers there.
  std::string orchestrator;
};

// Exit codes of `gyre run`.
inline constexpr int kRunSucceeded = 0;
inline constexpr int kRunFailed = 1;       // the execution failed or was cancelled
inline constexpr int kRunBadInput = 2;     // bad file, flag or definition
inline constexpr int kRunUnavailable = 3;  // the orchestrator could not be reached
// Ctrl-C while following (128 + SIGINT, as a shell reports it): the
// execution goes on.
inline constexpr int kRunInterrupted = 130;

// Parses and submits the workflow, follows its events to the end and prints
// progress and a summary (with the errors and stderr of failed tasks).
// Ctrl-C while following stops following and names the execution, which
// keeps running. Returns one of the exit codes above.
int RunWorkflow(const std::shared_ptr<grpc::Channel>& channel, const RunOptions& options);

// Parses a workflow file; when it names a dependency it does not define,
// parses it again with the task library of the orchestrator behind `stub`
// (asked only then). Unavailable when that orchestrator cannot be reached
// (within a few seconds); InvalidArgument with the file's error otherwise.
absl::StatusOr<gyre::v1::WorkflowDefinition> LoadWorkflowFileWithLibrary(
    gyre::v1::OrchestratorService::Stub& stub, const std::string& file);

// `gyre schedule`: asks for an outcome (ScheduleOutcome: the task
// library's `targets` and everything they depend on, with
// `options.context`), then follows and reports it as RunWorkflow does
// (`options.workflow_file` is not used). Same exit codes.
int ScheduleOutcome(const std::shared_ptr<grpc::Channel>& channel,
                    const std::vector<std::string>& targets, const RunOptions& options);

// `gyre watch`: follows `execution` ("executions/ID") again, from its first
// event, as RunWorkflow follows what it started (after a Ctrl-C, or from
// another terminal). Same exit codes; `options.workflow_file` and
// `options.context` are not used.
int WatchExecution(const std::shared_ptr<grpc::Channel>& channel, const std::string& execution,
                   const RunOptions& options);

// One warning for each `context` key (gyre run|schedule --set) that no task
// of `definition` uses: as ${KEY} or $KEY in a command or an env value, as
// an env key, or as a declared output. Such a key is most often a typo of
// one that is used, which the warning names:
//   --set ROW: no task uses ROW (as ${ROW} or $ROW in a command or env) (did you mean "ROWS"?)
std::vector<std::string> UnusedContextWarnings(const gyre::v1::WorkflowDefinition& definition,
                                               const std::map<std::string, std::string>& context);

// Parses "key=value" into `context`; InvalidArgument when malformed.
// --secret KEY: KEY's value from this process's environment into
// `secret_context`; an error naming KEY when it is unset.
absl::Status ParseSecretFlag(const std::string& key,
                             std::map<std::string, std::string>* secret_context);

absl::Status ParseSetFlag(const std::string& assignment,
                          std::map<std::string, std::string>* context);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_RUN_COMMAND_H_
