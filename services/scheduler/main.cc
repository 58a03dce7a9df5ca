// gyre-scheduler: task priority and placement.
#include "libs/server/api_service_module.h"
#include "services/scheduler/scheduler_service.h"

int main(int argc, char** argv) {
  gyre::server::ApiServiceModule module(std::make_unique<gyre::scheduler::SchedulerServiceImpl>(),
                                        "gyre.v1.SchedulerService", "scheduler");
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-scheduler", "scheduler", "0.0.0.0:50053", "0.0.0.0:9103", {}}, &module);
}
