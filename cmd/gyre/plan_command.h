#ifndef GYRE_CMD_GYRE_PLAN_COMMAND_H_
#define GYRE_CMD_GYRE_PLAN_COMMAND_H_

namespace gyre::cli {

// gyre plan FILE.yaml [--set k=v]... [--predictor ADDR] [--optimizer ADDR]
// [--json]: before anything runs, asks the predictor (--predictor, else
// $GYRE_PREDICTOR, else the orchestrator's address, where `gyre dev` serves
// every API) for each task's duration, memory and CPU with their p10-p90
// intervals, then prints them with the level of history that answered, the
// predicted critical path and finish time (the optimizer's critical-path
// code, run here on the predicted durations) and, when --optimizer answers,
// its summary for those durations. With no predictor reachable it says so
// and uses the declared values. Exit codes are run_command.h's.
int PlanCommand(int argc, char** argv);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_PLAN_COMMAND_H_
