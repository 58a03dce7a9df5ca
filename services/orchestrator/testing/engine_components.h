#ifndef GYRE_SERVICES_ORCHESTRATOR_TESTING_ENGINE_COMPONENTS_H_
#define GYRE_SERVICES_ORCHESTRATOR_TESTING_ENGINE_COMPONENTS_H_

// The engine's components wired together as WorkflowEngine wires them, for
// the components' own unit tests: the real lower components under the one
// being tested, a FakeClock for time, no façade (no lock, no timer thread,
// no delivery: what a call leaves for after the lock stays in `out` for the
// test to look at). Single-threaded, like the engine's locked sections.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gyre/v1/agent_service.pb.h"
#include "gyre/v1/workflow.pb.h"
#include "libs/common/clock.h"
#include "services/orchestrator/agent_channel.h"
#include "services/orchestrator/agent_leases.h"
#include "services/orchestrator/agent_manager.h"
#include "services/orchestrator/dispatcher.h"
#include "services/orchestrator/engine_journal.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/engine_outbox.h"
#include "services/orchestrator/engine_recovery.h"
#include "services/orchestrator/evaluator_decisions.h"
#include "services/orchestrator/event_publisher.h"
#include "services/orchestrator/execution_entry.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/global_task_table.h"
#include "services/orchestrator/queue_table.h"
#include "services/orchestrator/result_recorder.h"
#include "services/orchestrator/state_store.h"
#include "services/orchestrator/task_state_machine.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/workflow_registry.h"

namespace gyre::orchestrator::testing {

class EngineComponents {
 public:
  struct Options {
    absl::Duration lease_timeout = absl::Seconds(30);
    absl::Duration heartbeat_interval = absl::Seconds(5);
    // Null keeps records nowhere (the journal appends nothing). Not owned.
    StateStore* store = nullptr;
    uint64_t snapshot_every_records = 0;
    WorkerPools pools;
  };

  EngineComponents() : EngineComponents(Options()) {}
  explicit EngineComponents(Options options);

  // The time of the change being made, from the clock (the engine sets it
  // as each locked section starts).
  void Tick() { journal.set_now(clock.Now()); }
  // Time passes.
  void Advance(absl::Duration duration) {
    clock.Advance(duration);
    Tick();
  }

  // Starts an execution of `def` (prepared here, as the engine prepares an
  // inline definition) with `context`, as WorkflowEngine::StartExecution
  // does after its checks: built, recorded, its root tasks ready, its state
  // rolled up. Nothing is dispatched.
  ExecutionEntry& Start(gyre::v1::WorkflowDefinition def,
                        const std::map<std::string, std::string>& context = {},
                        int32_t priority = 50);
  // Registers `registration` on `channel` as WorkflowEngine::RegisterAgent
  // does (the agent's reported leases reconciled); nothing is dispatched.
  // Null (and a test failure) when the registration is refused.
  AgentEntry* Connect(const gyre::v1::Register& registration,
                      std::shared_ptr<AgentChannel> channel);

  // Gives `agent` `credit` more and dispatches to it (Dispatcher::DispatchTo,
  // as a Credit message does); returns what its RecordingChannel got.
  std::vector<gyre::v1::TaskAssignment> Dispatch(AgentEntry& agent, RecordingChannel& channel,
                                                 int credit);
  // Agent `agent_id`'s result for `ref`, as ResultRecorder::HandleResult
  // takes it after the engine parsed its output; whether it was accepted.
  bool Report(const std::string& agent_id, const gyre::v1::AttemptRef& ref,
              gyre::v1::AttemptOutcome outcome = gyre::v1::ATTEMPT_SUCCEEDED,
              const std::string& output_json = "", const std::string& error = "");

  // The index of task `task_id` of `exec` (a test failure when unknown).
  static uint32_t TaskIndex(const ExecutionEntry& exec, const std::string& task_id);
  static gyre::v1::TaskState StateOf(const ExecutionEntry& exec, const std::string& task_id) {
    return exec.tasks[TaskIndex(exec, task_id)].state;
  }

  FakeClock clock;
  EngineMetrics metrics{nullptr};
  // The journal's on_failure records here (an append failed).
  absl::Status store_failure;
  EngineJournal journal;
  WorkflowRegistry workflows;
  QueueTable queues{metrics};
  ExecutionTable executions{metrics};
  AgentManager agents;
  GlobalTaskTable globals;
  EventPublisher publisher;
  TaskStateMachine machine;
  Dispatcher dispatcher;
  EvaluatorDecisions evaluators;
  ResultRecorder results;
  AgentLeases leases;
  EngineRecovery recovery;
  // What the calls made so far left for after the engine lock.
  Outbox out;
};

}  // namespace gyre::orchestrator::testing

#endif  // GYRE_SERVICES_ORCHESTRATOR_TESTING_ENGINE_COMPONENTS_H_
