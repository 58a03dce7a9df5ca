#ifndef GYRE_LIBS_WORKFLOW_TASK_PROGRAM_H_
#define GYRE_LIBS_WORKFLOW_TASK_PROGRAM_H_

#include <string>

#include "gyre/v1/workflow.pb.h"

namespace gyre::workflow {

// What a task runs, as the predictor groups history by it: the command's
// program (its first word, without directories; a shell script's first
// word), "builtin:<kind>" for a builtin executor, or "" when neither is set.
// "tools/bin/align.sh -q" -> "align.sh". Used by the orchestrator when it
// forwards observations and by the predictor when it predicts, so that both
// name a program the same way.
std::string TaskProgram(const gyre::v1::TaskSpec& spec);

}  // namespace gyre::workflow

#endif  // GYRE_LIBS_WORKFLOW_TASK_PROGRAM_H_
