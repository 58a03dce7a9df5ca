#ifndef GYRE_CMD_GYRE_EXECUTION_COMMANDS_H_
#define GYRE_CMD_GYRE_EXECUTION_COMMANDS_H_

#include "absl/strings/string_view.h"

namespace gyre::cli {

// gyre status, list, logs, cancel, pause and resume: look at, read the
// output of and control executions from the command line, for one started
// by `gyre run` and left running as much as for any other. Each is one or
// two unary calls to the orchestrator, each with a deadline.
//
// An execution is named "executions/ID" or just ID. Exit codes are
// run_command.h's: kRunBadInput for bad arguments and for what the
// orchestrator does not know or refuses as malformed (NOT_FOUND,
// INVALID_ARGUMENT), kRunUnavailable when it cannot be reached in time,
// kRunFailed for any other refusal (cancelling an execution that ended).

// Whether `command` is one of them.
bool IsExecutionCommand(absl::string_view command);

// Runs `gyre argv[1] argv[2...]` (argv[1] one of the commands above);
// returns its exit code.
int RunExecutionCommand(int argc, char** argv);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_EXECUTION_COMMANDS_H_
