#ifndef GYRE_SERVICES_ORCHESTRATOR_TESTING_ENGINE_BUILDERS_H_
#define GYRE_SERVICES_ORCHESTRATOR_TESTING_ENGINE_BUILDERS_H_

// Short builders for what tests hand the engine: task specs, definitions,
// start requests, agent registrations and agent messages. Each returns a
// plain message, so a test can adjust it before use.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gyre/v1/agent_service.pb.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "gyre/v1/workflow.pb.h"

namespace gyre::orchestrator::testing {

// A task running a command (not a builtin: the test agents check the
// environment, which only a process gets; they run nothing either way),
// after `deps`, passing the context keys `outputs` downstream.
gyre::v1::TaskSpec Task(const std::string& id, const std::vector<std::string>& deps = {},
                        const std::vector<std::string>& outputs = {});

// `task`, declaring that it passes `keys` downstream (outputs:).
gyre::v1::TaskSpec Writes(gyre::v1::TaskSpec task, const std::vector<std::string>& keys);

// A definition named "workflows/test" holding `tasks`.
gyre::v1::WorkflowDefinition Workflow(std::vector<gyre::v1::TaskSpec> tasks);
// A definition named "workflows/`name`" holding `tasks`.
gyre::v1::WorkflowDefinition Workflow(const std::string& name,
                                      std::vector<gyre::v1::TaskSpec> tasks);

// `def`, declaring `keys` as context (with empty defaults), so that a start
// request may set them.
gyre::v1::WorkflowDefinition Declaring(gyre::v1::WorkflowDefinition def,
                                       const std::vector<std::string>& keys);

// A request to start `def` with `context`.
gyre::v1::StartExecutionRequest StartRequest(
    gyre::v1::WorkflowDefinition def, const std::map<std::string, std::string>& context = {});

// What an agent serving "default" with `slots` sends first, listing what it
// still runs.
gyre::v1::Register Registration(const std::string& id, int slots,
                                const std::vector<gyre::v1::AttemptRef>& running = {});

// An agent's report of one attempt, numbered `sequence` as an agent numbers
// its results.
gyre::v1::AgentMessage ResultMessage(const gyre::v1::AttemptRef& ref, uint64_t sequence,
                                     gyre::v1::AttemptOutcome outcome = gyre::v1::ATTEMPT_SUCCEEDED,
                                     std::string output = "", std::string error = "");

// An agent taking `tasks` more assignments.
gyre::v1::AgentMessage Credit(int tasks);

}  // namespace gyre::orchestrator::testing

#endif  // GYRE_SERVICES_ORCHESTRATOR_TESTING_ENGINE_BUILDERS_H_
