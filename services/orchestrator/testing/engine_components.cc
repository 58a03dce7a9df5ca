#include "services/orchestrator/testing/engine_components.h"

#include <utility>

#include "gtest/gtest.h"
#include "libs/workflow/context_keys.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/task_output.h"

namespace gyre::orchestrator::testing {

namespace v1 = ::gyre::v1;

EngineComponents::EngineComponents(Options options)
    : journal(options.store, options.snapshot_every_records,
              [this](const absl::Status& status) { store_failure = status; }),
      agents(queues, options.heartbeat_interval),
      machine(executions, queues, agents, globals, publisher, journal, metrics),
      dispatcher(executions, queues, agents, machine, journal, metrics, std::move(options.pools)),
      evaluators(executions, workflows, machine, journal),
      results(executions, machine, evaluators, journal, metrics),
      leases(executions, queues, agents, machine, metrics, options.lease_timeout,
             options.heartbeat_interval),
      recovery(workflows, executions, queues, globals, machine, results, evaluators, leases,
               journal) {
  Tick();
}

ExecutionEntry& EngineComponents::Start(v1::WorkflowDefinition def,
                                        const std::map<std::string, std::string>& context,
                                        int32_t priority) {
  Tick();
  absl::Status prepared = WorkflowRegistry::Prepare(nullptr, def);
  EXPECT_TRUE(prepared.ok()) << prepared;
  auto definition = std::make_shared<const v1::WorkflowDefinition>(std::move(def));
  auto declared = std::make_shared<const workflow::DeclaredContext>(*definition);
  v1::StateRecord record;
  v1::ExecutionStarted& started = *record.mutable_execution_started();
  started.set_execution_id(executions.NewId(clock.Now()));
  for (const auto& [key, value] : definition->default_context()) {
    (*started.mutable_context())[key] = value;
  }
  for (const auto& [key, value] : context) (*started.mutable_context())[key] = value;
  started.set_priority(priority);
  started.set_context_rules(kDeclaredContextRules);
  *started.mutable_create_time() = ToProto(journal.now());
  ExecutionEntry& exec = machine.CreateExecution(started, definition, std::move(declared), out);
  *started.mutable_definition() = *definition;
  journal.Persist(record);
  machine.UpdateExecutionState(exec, out);
  return exec;
}

AgentEntry* EngineComponents::Connect(const v1::Register& registration,
                                      std::shared_ptr<AgentChannel> channel) {
  Tick();
  bool reconnected = false;
  std::string took_over;
  absl::StatusOr<AgentEntry*> agent =
      agents.Register(registration, std::move(channel), clock.Now(), &reconnected, &took_over);
  EXPECT_TRUE(agent.ok()) << agent.status();
  if (!agent.ok()) return nullptr;
  leases.OnRegister(**agent, registration, reconnected, clock.Now(), out);
  return *agent;
}

std::vector<v1::TaskAssignment> EngineComponents::Dispatch(AgentEntry& agent,
                                                           RecordingChannel& channel, int credit) {
  Tick();
  agent.credit += credit;
  dispatcher.DispatchTo(agent, out);
  return channel.Take(channel.pending(), absl::ZeroDuration());
}

bool EngineComponents::Report(const std::string& agent_id, const v1::AttemptRef& ref,
                              v1::AttemptOutcome outcome, const std::string& output_json,
                              const std::string& error) {
  Tick();
  v1::TaskResult result;
  *result.mutable_ref() = ref;
  result.set_outcome(outcome);
  result.set_output_json(output_json);
  result.set_error(error);
  result.set_sequence(1);
  ParsedOutput parsed = ParseTaskOutput(output_json);
  return results.HandleResult(agent_id, result, parsed, nullptr, out);
}

uint32_t EngineComponents::TaskIndex(const ExecutionEntry& exec, const std::string& task_id) {
  auto it = exec.task_index.find(task_id);
  EXPECT_NE(it, exec.task_index.end()) << "no task " << task_id << " in " << exec.name();
  return it != exec.task_index.end() ? it->second : 0;
}

}  // namespace gyre::orchestrator::testing
