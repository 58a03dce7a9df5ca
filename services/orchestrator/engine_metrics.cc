#include "services/orchestrator/engine_metrics.h"

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"

namespace gyre::orchestrator {

namespace {

std::string OutcomeLabel(gyre::v1::AttemptOutcome outcome) {
  switch (outcome) {
    case gyre::v1::ATTEMPT_SUCCEEDED:
      return "succeeded";
    case gyre::v1::ATTEMPT_FAILED:
      return "failed";
    case gyre::v1::ATTEMPT_TIMED_OUT:
      return "timed_out";
    case gyre::v1::ATTEMPT_CANCELLED:
      return "cancelled";
    case gyre::v1::ATTEMPT_LOST:
      return "lost";
    default:
      return "unknown";
  }
}

}  // namespace
namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

prometheus::Histogram::BucketBoundaries DurationBuckets() {
  return {0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 14400};
}

}  // namespace

EngineMetrics::EngineMetrics(prometheus::Registry* registry) {
  if (registry == nullptr) return;
  desired_workers_ = &prometheus::BuildGauge()
                          .Name("orchestrator_desired_workers")
                          .Help(
                              "Agents wanted per worker type: clamp(ceil((queued + running) / "
                              "factor), min, max). The autoscaling signal.")
                          .Register(*registry);
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("gyre_queue_depth")
                      .Help("Tasks ready and waiting for an agent, per worker type.")
                      .Register(*registry);
  running_tasks_ = &prometheus::BuildGauge()
                        .Name("gyre_running_tasks")
                        .Help("Tasks leased or running, per worker type.")
                        .Register(*registry);
  queue_agents_ = &prometheus::BuildGauge()
                       .Name("gyre_queue_agents")
                       .Help(
                           "Connected agents serving the worker type (against "
                           "orchestrator_desired_workers: what the autoscaler delivered).")
                       .Register(*registry);
  agents_connected_ = &prometheus::BuildGauge()
                           .Name("gyre_agents_connected")
                           .Help("Agents holding a stream to the orchestrator.")
                           .Register(*registry)
                           .Add({});
  free_slots_ = &prometheus::BuildGauge()
                     .Name("gyre_agent_free_slots")
                     .Help("Task slots free across connected agents.")
                     .Register(*registry)
                     .Add({});
  outcomes_ = &prometheus::BuildCounter()
                   .Name("gyre_task_outcomes_total")
                   .Help("Task attempts ended, by outcome.")
                   .Register(*registry);
  for (int outcome = 0; outcome < gyre::v1::AttemptOutcome_ARRAYSIZE; ++outcome) {
    outcome_counters_[outcome] = &outcomes_->Add(
        {{"outcome", OutcomeLabel(static_cast<gyre::v1::AttemptOutcome>(outcome))}});
  }
  executions_ = &prometheus::BuildGauge()
                     .Name("gyre_executions")
                     .Help("Executions known to the orchestrator, by state.")
                     .Register(*registry);
  for (int state = 1; state < gyre::v1::ExecutionState_ARRAYSIZE; ++state) {
    const std::string name = absl::AsciiStrToLower(
        gyre::v1::ExecutionState_Name(static_cast<gyre::v1::ExecutionState>(state)));
    absl::string_view label = name;
    absl::ConsumePrefix(&label, "execution_");
    execution_gauges_[state] = &executions_->Add({{"state", std::string(label)}});
  }
  submit_to_start_ = &prometheus::BuildHistogram()
                          .Name("gyre_task_submit_to_start_seconds")
                          .Help("Time from a task becoming ready to its process starting.")
                          .Register(*registry)
                          .Add({}, LatencyBuckets());
  execution_duration_ = &prometheus::BuildHistogram()
                             .Name("gyre_execution_duration_seconds")
                             .Help(
                                 "From an execution's submission to its end, by the "
                                 "executions that ended.")
                             .Register(*registry)
                             .Add({}, DurationBuckets());
  run_duration_ = &prometheus::BuildHistogram()
                       .Name("gyre_task_run_duration_seconds")
                       .Help("Wall-clock duration of task attempts.")
                       .Register(*registry)
                       .Add({}, DurationBuckets());
  lease_latency_ = &prometheus::BuildHistogram()
                        .Name("gyre_lease_latency_seconds")
                        .Help("Time from a task becoming ready to its lease to an agent.")
                        .Register(*registry)
                        .Add({}, LatencyBuckets());
}

void EngineMetrics::SetQueue(const std::string& worker_type, int64_t queued, int64_t running,
                             int64_t desired_workers, int64_t connected_agents) {
  if (desired_workers_ == nullptr) return;
  QueueGauges* gauges;
  {
    absl::MutexLock lock(&mutex_);
    auto [it, inserted] = queues_.try_emplace(worker_type);
    if (inserted) {
      it->second.desired = &desired_workers_->Add({{"worker_type", worker_type}});
      it->second.depth = &queue_depth_->Add({{"worker_type", worker_type}});
      it->second.running = &running_tasks_->Add({{"worker_type", worker_type}});
      it->second.agents = &queue_agents_->Add({{"worker_type", worker_type}});
    }
    gauges = &it->second;
  }
  gauges->desired->Set(static_cast<double>(desired_workers));
  gauges->depth->Set(static_cast<double>(queued));
  gauges->running->Set(static_cast<double>(running));
  gauges->agents->Set(static_cast<double>(connected_agents));
}

void EngineMetrics::RemoveQueue(const std::string& worker_type) {
  if (desired_workers_ == nullptr) return;
  absl::MutexLock lock(&mutex_);
  auto it = queues_.find(worker_type);
  if (it == queues_.end()) return;
  desired_workers_->Remove(it->second.desired);
  queue_depth_->Remove(it->second.depth);
  running_tasks_->Remove(it->second.running);
  queue_agents_->Remove(it->second.agents);
  queues_.erase(it);
}

void EngineMetrics::SetAgents(int64_t connected, int64_t free_slots) {
  if (agents_connected_ == nullptr) return;
  agents_connected_->Set(static_cast<double>(connected));
  free_slots_->Set(static_cast<double>(free_slots));
}

void EngineMetrics::CountOutcome(gyre::v1::AttemptOutcome outcome) {
  if (outcomes_ == nullptr) return;
  const int index = outcome >= 0 && outcome < gyre::v1::AttemptOutcome_ARRAYSIZE ? outcome : 0;
  outcome_counters_[index]->Increment();
}

void EngineMetrics::SetExecutions(gyre::v1::ExecutionState state, int64_t count) {
  if (executions_ == nullptr || state <= 0 || state >= gyre::v1::ExecutionState_ARRAYSIZE) return;
  execution_gauges_[state]->Set(static_cast<double>(count));
}

void EngineMetrics::ObserveSubmitToStart(double seconds) {
  if (submit_to_start_ != nullptr) submit_to_start_->Observe(seconds);
}

void EngineMetrics::ObserveRunDuration(double seconds) {
  if (run_duration_ != nullptr) run_duration_->Observe(seconds);
}

void EngineMetrics::ObserveExecutionDuration(double seconds) {
  if (execution_duration_ != nullptr) execution_duration_->Observe(seconds);
}

void EngineMetrics::ObserveLeaseLatency(double seconds) {
  if (lease_latency_ != nullptr) lease_latency_->Observe(seconds);
}

}  // namespace gyre::orchestrator
