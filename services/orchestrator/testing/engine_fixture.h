#ifndef GYRE_SERVICES_ORCHESTRATOR_TESTING_ENGINE_FIXTURE_H_
#define GYRE_SERVICES_ORCHESTRATOR_TESTING_ENGINE_FIXTURE_H_

// The fixture the engine-level tests (workflow_engine_*_test.cc) share: one
// WorkflowEngine kept in memory, agents connected on RecordingChannels, and
// short ways to start executions and report results.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "gyre/v1/agent_service.pb.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator::testing {

class WorkflowEngineTest : public ::testing::Test {
 protected:
  WorkflowEngineTest() : engine_(Options()) {}

  static WorkflowEngine::Options Options() {
    WorkflowEngine::Options options;
    options.lease_timeout = absl::Seconds(30);
    return options;
  }

  std::shared_ptr<RecordingChannel> Connect(const std::string& id, int slots = 8) {
    auto channel = std::make_shared<RecordingChannel>();
    EXPECT_TRUE(engine_.RegisterAgent(Registration(id, slots), channel).ok());
    return channel;
  }

  std::string Start(gyre::v1::WorkflowDefinition def,
                    const std::map<std::string, std::string>& context = {}) {
    absl::StatusOr<gyre::v1::Execution> execution =
        engine_.StartExecution(StartRequest(std::move(def), context));
    EXPECT_TRUE(execution.ok()) << execution.status();
    return execution.ok() ? execution->name() : "";
  }

  void Report(const std::string& agent, const gyre::v1::TaskAssignment& task,
              gyre::v1::AttemptOutcome outcome = gyre::v1::ATTEMPT_SUCCEEDED,
              std::string output = "", std::string error = "") {
    ASSERT_TRUE(engine_
                    .HandleAgentMessage(agent, ResultMessage(task.ref(), ++next_sequence_, outcome,
                                                             std::move(output), std::move(error)))
                    .ok());
    ASSERT_TRUE(engine_.HandleAgentMessage(agent, Credit(1)).ok());
  }

  gyre::v1::TaskState StateOf(const std::string& execution, const std::string& task) {
    return engine_.GetTaskRun(execution + "/tasks/" + task)->state();
  }

  WorkflowEngine engine_;
  uint64_t next_sequence_ = 0;  // results are numbered, as an agent does
};
}  // namespace gyre::orchestrator::testing

#endif  // GYRE_SERVICES_ORCHESTRATOR_TESTING_ENGINE_FIXTURE_H_
