#include "services/orchestrator/waiting_explainer.h"

#include <algorithm>
#include <functional>
#include <queue>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "services/orchestrator/proto_time.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

std::string When(absl::Time at, absl::Time now) {
  const absl::Duration in = absl::Trunc(std::max(absl::ZeroDuration(), at - now), absl::Seconds(1));
  return absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", at, absl::UTCTimeZone()), " (in ",
                      absl::FormatDuration(in), ")");
}

void FillCandidate(const AgentEntry& agent, v1::CandidateAgent* out) {
  out->set_agent(absl::StrCat("agents/", agent.id));
  for (const auto& [key, value] : agent.registration.labels())
    (*out->mutable_labels())[key] = value;
  out->set_cpu(agent.registration.resources().cpu());
  out->set_memory_bytes(agent.registration.resources().memory_bytes());
  out->set_gpus(agent.registration.resources().gpus());
  out->set_slots(agent.registration.slots());
  out->set_free_slots(agent.free_slots());
}

// The requirements of `spec` that `agent`'s labels and whole offer fail,
// first the labels, in words ("label gpu=a100 (it has gpu=t4)").
std::vector<std::string> FailedRequirements(const AgentEntry& agent, const v1::TaskSpec& spec) {
  std::vector<std::string> failed;
  // Sorted, so that the first failure named is the same on every read.
  const std::map<std::string, std::string> selector(spec.agent_selector().begin(),
                                                    spec.agent_selector().end());
  for (const auto& [key, value] : selector) {
    auto has = agent.registration.labels().find(key);
    if (has == agent.registration.labels().end()) {
      failed.push_back(absl::StrCat("label ", key, "=", value, " (it has no label ", key, ")"));
    } else if (has->second != value) {
      failed.push_back(
          absl::StrCat("label ", key, "=", value, " (it has ", key, "=", has->second, ")"));
    }
  }
  const v1::Resources& need = spec.resources();
  const v1::Resources& offer = agent.registration.resources();
  if (offer.cpu() > 0 && need.cpu() > offer.cpu() + 1e-9) {
    failed.push_back(absl::StrCat("cpu ", need.cpu(), " (it offers ", offer.cpu(), ")"));
  }
  if (offer.memory_bytes() > 0 && need.memory_bytes() > offer.memory_bytes()) {
    failed.push_back(absl::StrCat("memory ", need.memory_bytes(), " bytes (it offers ",
                                  offer.memory_bytes(), ")"));
  }
  if (need.gpus() > offer.gpus()) {
    failed.push_back(absl::StrCat("gpus ", need.gpus(), " (it offers ", offer.gpus(), ")"));
  }
  return failed;
}

// The requirement itself, without what the agent has: "label gpu=a100".
std::string RequirementOnly(const std::string& failed) {
  const size_t paren = failed.find(" (");
  return paren == std::string::npos ? failed : failed.substr(0, paren);
}

std::optional<absl::Duration> Median(std::vector<absl::Duration>& samples) {
  if (samples.empty()) return std::nullopt;
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  return samples[samples.size() / 2];
}

bool Usable(const AgentEntry& agent) { return agent.channel != nullptr && !agent.draining; }

}  // namespace

std::optional<v1::WaitingExplanation> WaitingExplainer::Explain(const ExecutionEntry& exec,
                                                                uint32_t index) const {
  const TaskEntry& task = exec.tasks[index];
  if (exec.final() || (task.state != v1::TASK_PENDING && task.state != v1::TASK_READY)) {
    return std::nullopt;
  }
  if (exec.state == v1::EXECUTION_PAUSED) {
    v1::WaitingExplanation why;
    why.set_kind(v1::WaitingExplanation::PAUSED);
    why.set_message(absl::StrCat("its execution is paused",
                                 exec.reason.empty() ? "" : absl::StrCat(": ", exec.reason),
                                 "; nothing of it is leased until it is resumed"));
    return why;
  }
  if (task.state == v1::TASK_PENDING) return ExplainPending(exec, task);
  return ExplainReady(exec, index);
}

v1::WaitingExplanation WaitingExplainer::ExplainPending(const ExecutionEntry& exec,
                                                        const TaskEntry& task) const {
  v1::WaitingExplanation why;
  if (task.unmet_dependencies > 0) {
    why.set_kind(v1::WaitingExplanation::WAITING_ON_DEPENDENCIES);
    std::vector<std::string> words;
    int unmet = 0;
    for (uint32_t parent : task.parents) {
      const TaskEntry& dep = exec.tasks[parent];
      if (dep.state == v1::TASK_SUCCEEDED) continue;
      ++unmet;
      if (unmet > kMaxListedDependencies) continue;
      v1::DependencyState& listed = *why.add_waiting_on();
      listed.set_task_id(dep.spec->id());
      listed.set_state(dep.state);
      if (unmet <= 5) {
        words.push_back(absl::StrCat(
            dep.spec->id(), " (", absl::StripPrefix(v1::TaskState_Name(dep.state), "TASK_"), ")"));
      }
    }
    why.set_message(absl::StrCat("waiting on ", unmet, " dependenc", unmet == 1 ? "y" : "ies", ": ",
                                 absl::StrJoin(words, ", "),
                                 unmet > 5 ? absl::StrCat(" and ", unmet - 5, " more") : ""));
    return why;
  }
  if (task.retries_used > 0) {
    // Until it is ready again, ready_time is when the retry is due
    // (TaskStateMachine::ScheduleRetry).
    why.set_kind(v1::WaitingExplanation::RETRY_BACKOFF);
    *why.mutable_retry_at() = ToProto(task.ready_time);
    why.set_message(absl::StrCat("retry ", task.retries_used, " of ",
                                 task.spec->retry().max_retries(), " waits out its backoff until ",
                                 When(task.ready_time, now_),
                                 task.reason.empty() ? "" : absl::StrCat("; ", task.reason)));
    return why;
  }
  why.set_kind(v1::WaitingExplanation::WAITING_FOR_GLOBAL_TASK);
  why.set_message(
      "a global task: the same task with the same identity runs in another execution, whose "
      "result satisfies this one");
  return why;
}

const WaitingExplainer::Placement& WaitingExplainer::PlacementFor(uint32_t queue,
                                                                  const v1::TaskSpec& spec) const {
  const std::map<std::string, std::string> selector(spec.agent_selector().begin(),
                                                    spec.agent_selector().end());
  std::string key = absl::StrCat(queue, "|", spec.resources().cpu(), "|",
                                 spec.resources().memory_bytes(), "|", spec.resources().gpus());
  for (const auto& [label, value] : selector) {
    absl::StrAppend(&key, "|", label.size(), ":", label, "=", value.size(), ":", value);
  }
  auto [found, inserted] = placements_.try_emplace(std::move(key));
  Placement& placement = found->second;
  if (!inserted) return placement;
  for (const auto& [id, agent] : agents_.all()) {
    if (!Usable(*agent) || !agent->serves(queue)) continue;
    ++placement.serving;
    std::vector<std::string> failed = FailedRequirements(*agent, spec);
    if (failed.empty()) {
      placement.matching.push_back(agent.get());
      placement.matching_slots += agent->registration.slots();
      if (placement.roomy == nullptr && agent->free_slots() > 0 &&
          agent->has_room_for(spec.resources())) {
        placement.roomy = agent.get();
      }
    } else if (placement.closest == nullptr || failed.size() < placement.closest_failed.size()) {
      placement.closest = agent.get();
      placement.closest_failed = std::move(failed);
    }
  }
  if (placement.roomy != nullptr) return placement;
  for (const AgentEntry* agent : placement.matching) {
    for (const auto& [exec_index, task_index] : agent->leases) {
      if (exec_index >= executions_.size() || executions_.all()[exec_index] == nullptr) continue;
      const ExecutionEntry& running_exec = executions_.at(exec_index);
      if (task_index >= running_exec.tasks.size()) continue;
      const TaskEntry& running = running_exec.tasks[task_index];
      std::optional<absl::Duration> expected = RecordedDuration(running_exec, task_index);
      if (!expected) {
        placement.known = false;
        continue;
      }
      absl::Time started = running.lease_time;
      if (!running.attempts.empty() && running.attempts.back().attempt == running.attempt &&
          running.attempts.back().start_time != 0) {
        started = absl::FromUnixNanos(running.attempts.back().start_time);
      }
      placement.frees.push_back({std::max(now_, started + *expected), agent});
    }
  }
  std::sort(placement.frees.begin(), placement.frees.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return placement;
}

v1::WaitingExplanation WaitingExplainer::ExplainReady(const ExecutionEntry& exec,
                                                      uint32_t index) const {
  const TaskEntry& task = exec.tasks[index];
  const v1::TaskSpec& spec = *task.spec;
  const std::string& queue = queues_.at(task.queue).name;
  v1::WaitingExplanation why;
  const Placement& placement = PlacementFor(task.queue, spec);
  const std::vector<const AgentEntry*>& matching = placement.matching;

  if (matching.empty()) {
    why.set_kind(v1::WaitingExplanation::NO_MATCHING_AGENT);
    if (placement.serving == 0) {
      why.set_failing_requirement(absl::StrCat("queue \"", queue, "\""));
      why.set_message(absl::StrCat("no connected agent serves queue \"", queue, "\""));
      return why;
    }
    const std::vector<std::string>& failed = placement.closest_failed;
    why.set_failing_requirement(RequirementOnly(failed.front()));
    FillCandidate(*placement.closest, why.mutable_best_candidate());
    why.set_message(
        absl::StrCat("none of the ", placement.serving, " connected agent(s) serving queue \"",
                     queue, "\" meets ", failed.front(), ": the closest, ", placement.closest->id,
                     ", fails ", failed.size(), " requirement(s): ", absl::StrJoin(failed, ", ")));
    return why;
  }

  why.set_matching_agents(static_cast<int32_t>(matching.size()));
  why.set_matching_slots(placement.matching_slots);
  std::vector<std::pair<uint32_t, uint32_t>> ahead;
  const int64_t position = QueuePosition(exec, index, matching, &ahead);
  why.set_queue_position(position);
  const std::string where = position > 0
                                ? absl::StrCat("position ", position, " in queue \"", queue, "\"")
                                : absl::StrCat("queue \"", queue, "\"");

  if (placement.roomy != nullptr) {
    why.set_kind(v1::WaitingExplanation::DISPATCHING);
    FillCandidate(*placement.roomy, why.mutable_best_candidate());
    why.set_message(absl::StrCat("agent ", placement.roomy->id,
                                 " has room for it: it is about to be leased (", where, ")"));
    return why;
  }

  // Every slot that could take it is busy: when does one free? The tasks
  // ahead take the first slots to free, each for its own duration.
  FillCandidate(placement.frees.empty() ? *matching.front() : *placement.frees.front().second,
                why.mutable_best_candidate());
  if (placement.known && !placement.frees.empty() && position > 0 &&
      static_cast<int64_t>(ahead.size()) == position - 1) {
    using Slot = std::pair<absl::Time, const AgentEntry*>;
    std::priority_queue<Slot, std::vector<Slot>, std::greater<>> frees(
        std::greater<>(), std::vector<Slot>(placement.frees.begin(), placement.frees.end()));
    bool known = true;
    for (const auto& [exec_index, task_index] : ahead) {
      std::optional<absl::Duration> expected =
          RecordedDuration(executions_.at(exec_index), task_index);
      if (!expected) {
        known = false;
        break;
      }
      Slot slot = frees.top();
      frees.pop();
      slot.first += *expected;
      frees.push(slot);
    }
    if (known) *why.mutable_estimated_start() = ToProto(frees.top().first);
  }
  const std::string estimate =
      why.has_estimated_start()
          ? absl::StrCat("; estimated start ", When(FromProto(why.estimated_start()), now_))
          : "; no recorded durations to estimate its start from";

  auto pool = pools_.pools.find(queue);
  if (pool != pools_.pools.end() && queues_.at(task.queue).agents >= pool->second.max_workers) {
    why.set_kind(v1::WaitingExplanation::POOL_AT_MAX);
    why.set_pool_max_workers(pool->second.max_workers);
    why.set_message(absl::StrCat(
        "all ", placement.matching_slots, " slot(s) of the ", matching.size(),
        " agent(s) that could run it are busy and worker pool \"", queue, "\" is at its max of ",
        pool->second.max_workers, " agent(s) (", where, estimate, ")"));
    return why;
  }
  why.set_kind(v1::WaitingExplanation::SLOTS_BUSY);
  std::vector<std::string> names;
  for (const AgentEntry* agent : matching) {
    if (names.size() == 5) {
      names.push_back("...");
      break;
    }
    names.push_back(agent->id);
  }
  why.set_message(absl::StrCat("all ", placement.matching_slots,
                               " slot(s) of the agent(s) that could run it (",
                               absl::StrJoin(names, ", "), ") are busy; ", where, estimate));
  return why;
}

int64_t WaitingExplainer::QueuePosition(const ExecutionEntry& exec, uint32_t index,
                                        const std::vector<const AgentEntry*>& matching,
                                        std::vector<std::pair<uint32_t, uint32_t>>* ahead) const {
  const TaskEntry& task = exec.tasks[index];
  int64_t position = 0;
  size_t scanned = 0;
  bool found = false;
  queues_.at(task.queue).ready.Visit(kMaxPositionScan + 1, [&](const ReadyTask& entry) {
    if (++scanned > kMaxPositionScan || scan_budget_ == 0) return false;
    --scan_budget_;
    if (entry.execution >= executions_.size() || executions_.all()[entry.execution] == nullptr) {
      return true;
    }
    const ExecutionEntry& other_exec = executions_.at(entry.execution);
    if (other_exec.final() || other_exec.state == v1::EXECUTION_PAUSED ||
        entry.task >= other_exec.tasks.size()) {
      return true;
    }
    const TaskEntry& other = other_exec.tasks[entry.task];
    if (other.state != v1::TASK_READY || other.generation != entry.generation) return true;
    if (&other_exec == &exec && entry.task == index) {
      found = true;
      return false;
    }
    // Only what would take one of the same agents is ahead of it.
    for (const AgentEntry* agent : matching) {
      if (agent->matches(other.spec->agent_selector()) && agent->offers(other.spec->resources())) {
        ++position;
        if (position <= kMaxSimulatedAhead) ahead->push_back({entry.execution, entry.task});
        break;
      }
    }
    return true;
  });
  return found ? position + 1 : 0;
}

std::optional<absl::Duration> WaitingExplainer::RecordedDuration(const ExecutionEntry& exec,
                                                                 uint32_t index) const {
  const TaskEntry& task = exec.tasks[index];
  std::vector<absl::Duration> samples;
  for (const AttemptRecord& attempt : task.attempts) {
    if (attempt.wall_time > 0 && attempt.outcome == v1::ATTEMPT_SUCCEEDED) {
      samples.push_back(absl::Nanoseconds(attempt.wall_time));
    }
  }
  if (!samples.empty()) return Median(samples);
  auto [cached, inserted] = queue_medians_.try_emplace({exec.index, task.queue});
  if (!inserted) return cached->second;
  const size_t scan = std::min(exec.tasks.size(), kMaxDurationScan);
  for (size_t i = 0; i < scan && samples.size() < kMaxDurationSamples; ++i) {
    const TaskEntry& other = exec.tasks[i];
    if (other.state != v1::TASK_SUCCEEDED || other.queue != task.queue || other.attempts.empty()) {
      continue;
    }
    const AttemptRecord& last = other.attempts.back();
    if (last.wall_time > 0) samples.push_back(absl::Nanoseconds(last.wall_time));
  }
  cached->second = Median(samples);
  return cached->second;
}

}  // namespace gyre::orchestrator
