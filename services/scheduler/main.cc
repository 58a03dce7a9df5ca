// gyre-scheduler: task priority and placement.
#include "services/scheduler/scheduler_module.h"

int main(int argc, char** argv) {
  gyre::scheduler::SchedulerModule module;
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-scheduler", "scheduler", "0.0.0.0:50053", "0.0.0.0:9103"}, &module);
}
