#include "services/orchestrator/testing/engine_builders.h"

#include <utility>

namespace gyre::orchestrator::testing {

namespace v1 = ::gyre::v1;

v1::TaskSpec Task(const std::string& id, const std::vector<std::string>& deps,
                  const std::vector<std::string>& outputs) {
  v1::TaskSpec task;
  task.set_id(id);
  task.add_command("true");
  for (const std::string& dep : deps) task.add_depends_on(dep);
  for (const std::string& key : outputs) task.add_outputs(key);
  return task;
}

v1::TaskSpec Writes(v1::TaskSpec task, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) task.add_outputs(key);
  return task;
}

v1::WorkflowDefinition Workflow(std::vector<v1::TaskSpec> tasks) {
  return Workflow("test", std::move(tasks));
}

v1::WorkflowDefinition Workflow(const std::string& name, std::vector<v1::TaskSpec> tasks) {
  v1::WorkflowDefinition def;
  def.set_name("workflows/" + name);
  for (v1::TaskSpec& task : tasks) *def.add_tasks() = std::move(task);
  return def;
}

v1::WorkflowDefinition Declaring(v1::WorkflowDefinition def, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) (*def.mutable_default_context())[key] = "";
  return def;
}

v1::StartExecutionRequest StartRequest(v1::WorkflowDefinition def,
                                       const std::map<std::string, std::string>& context) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = std::move(def);
  for (const auto& [key, value] : context) (*request.mutable_context())[key] = value;
  return request;
}

v1::Register Registration(const std::string& id, int slots,
                          const std::vector<v1::AttemptRef>& running) {
  v1::Register registration;
  registration.set_agent_id(id);
  registration.set_slots(slots);
  registration.add_queues("default");
  for (const v1::AttemptRef& ref : running) *registration.add_running() = ref;
  return registration;
}

v1::AgentMessage ResultMessage(const v1::AttemptRef& ref, uint64_t sequence,
                               v1::AttemptOutcome outcome, std::string output, std::string error) {
  v1::AgentMessage message;
  v1::TaskResult* result = message.mutable_task_result();
  *result->mutable_ref() = ref;
  result->set_outcome(outcome);
  result->set_output_json(std::move(output));
  result->set_error(std::move(error));
  result->set_sequence(sequence);
  return message;
}

v1::AgentMessage Credit(int tasks) {
  v1::AgentMessage message;
  message.mutable_credit()->set_tasks(tasks);
  return message;
}

}  // namespace gyre::orchestrator::testing
