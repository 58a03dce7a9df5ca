#ifndef GYRE_CMD_GYRE_ANALYZE_COMMAND_H_
#define GYRE_CMD_GYRE_ANALYZE_COMMAND_H_

#include "gyre/v1/optimizer_service.pb.h"

namespace gyre::cli {

// gyre analyze FILE.yaml|workflows/NAME|executions/ID: asks the optimizer
// (--optimizer, else $GYRE_OPTIMIZER, else the orchestrator's address, where
// `gyre dev` serves every API) for the analysis and prints it; with
// --apply=ID[,ID...] applies those recommendations to workflows/NAME as a
// new version and prints the diff. Exit codes are run_command.h's.
int AnalyzeCommand(int argc, char** argv);

// Prints an analysis as `gyre analyze` does (gyre plan prints the
// optimizer's summary with it).
void PrintAnalysis(const gyre::v1::AnalyzeWorkflowResponse& response);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_ANALYZE_COMMAND_H_
