#include "services/orchestrator/result_recorder.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/limits.h"
#include "libs/workflow/context_keys.h"
#include "services/orchestrator/proto_time.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// Whether a result holds more than the orchestrator keeps of it.
bool Oversized(const v1::TaskResult& result) {
  return result.stdout_tail().size() > limits::kMaxResultTailBytes ||
         result.stderr_tail().size() > limits::kMaxResultTailBytes ||
         result.error().size() > limits::kMaxMessageTextBytes ||
         result.output_json().size() > limits::kMaxOutputJsonBytes;
}

bool HasOversizedResult(const v1::AgentMessage& message) {
  if (message.has_task_result()) return Oversized(message.task_result());
  if (!message.has_task_results()) return false;
  const auto& results = message.task_results().results();
  return std::any_of(results.begin(), results.end(), Oversized);
}

// Cuts `text` to at most `max` bytes, at a UTF-8 character boundary (a
// proto string must stay valid UTF-8).
void CutText(std::string* text, size_t max) {
  if (text->size() <= max) return;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>((*text)[end]) & 0xC0) == 0x80) --end;
  text->resize(end);
}

// Cuts a stdout or stderr tail to what the orchestrator keeps; returns the
// byte count to record (what the task wrote: never less than what arrived,
// so the logs show as truncated).
int64_t CutTail(std::string* tail, int64_t bytes) {
  const auto arrived = static_cast<int64_t>(tail->size());
  if (tail->size() > limits::kMaxResultTailBytes) tail->resize(limits::kMaxResultTailBytes);
  return std::max(bytes, arrived);
}

void CapResult(v1::TaskResult& result) {
  result.set_stdout_bytes(CutTail(result.mutable_stdout_tail(), result.stdout_bytes()));
  result.set_stderr_bytes(CutTail(result.mutable_stderr_tail(), result.stderr_bytes()));
  if (result.output_json().size() > limits::kMaxOutputJsonBytes) {
    if (result.outcome() == v1::ATTEMPT_SUCCEEDED) {
      result.set_outcome(v1::ATTEMPT_FAILED);
      result.set_error(absl::StrCat("$GYRE_OUTPUT holds ", result.output_json().size(),
                                    " bytes; a task may pass on at most ",
                                    limits::kMaxOutputJsonBytes));
    }
    result.clear_output_json();
  }
  CutText(result.mutable_error(), limits::kMaxMessageTextBytes);
}

// Adds the numeric values of `context` to `out`, up to the bound.
void AddNumericValues(const std::map<std::string, std::string>& context,
                      std::vector<std::pair<std::string, double>>* out) {
  for (const auto& [key, value] : context) {
    if (out->size() >= AttemptObservation::kMaxContextValues) return;
    double number = 0;
    if (absl::SimpleAtod(value, &number)) out->emplace_back(key, number);
  }
}

// What the accepted result of `ref` used, for the predictor.
AttemptObservation ObservationOf(const ExecutionEntry& exec, const TaskEntry& task,
                                 const AttemptRecord& attempt) {
  AttemptObservation observation;
  observation.definition = exec.definition;
  observation.spec = task.spec;
  AddNumericValues(exec.context, &observation.context_values);
  observation.execution_values = observation.context_values.size();
  if (task.details != nullptr)
    AddNumericValues(task.details->inherited, &observation.context_values);
  observation.wall_nanos = attempt.wall_time;
  observation.cpu_nanos = attempt.cpu_time;
  observation.peak_rss_bytes = attempt.peak_rss_bytes;
  observation.end_unix_nanos = attempt.end_time;
  observation.outcome = attempt.outcome;
  return observation;
}

}  // namespace

std::optional<v1::AgentMessage> ResultRecorder::CapOversized(const v1::AgentMessage& message) {
  // A copy, only in the rare case that something is over the limits.
  if (!HasOversizedResult(message)) return std::nullopt;
  std::optional<v1::AgentMessage> capped(message);
  if (capped->has_task_result()) {
    CapResult(*capped->mutable_task_result());
  } else {
    for (v1::TaskResult& result : *capped->mutable_task_results()->mutable_results()) {
      CapResult(result);
    }
  }
  return capped;
}

void ResultRecorder::RecordResults(AgentEntry& agent,
                                   absl::Span<const v1::TaskResult* const> results,
                                   absl::Span<ParsedOutput> parsed, Outbox& out) {
  // Reused whole, like the lease records: filling one in allocates nothing.
  std::vector<v1::StateRecord> records = std::move(scratch_);
  size_t recorded = 0;
  uint64_t through = 0;
  ParsedOutput nothing;  // the output of every result when `parsed` is empty
  std::vector<AttemptObservation> observations;
  if (sink_ != nullptr) observations.reserve(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    const v1::TaskResult* result = results[i];
    through = std::max(through, result->sequence());
    if (recorded == records.size()) records.emplace_back();
    v1::TaskResultRecorded* record = records[recorded].mutable_task_result();
    // What an earlier use of this scratch record said about its output.
    record->clear_outputs();
    record->clear_decision();
    record->clear_output_error();
    record->clear_output_error_final();
    record->set_output_parsed(true);
    // A stale result is acknowledged too, so the agent forgets it.
    if (!HandleResult(agent.id, *result, parsed.empty() ? nothing : parsed[i], record, out)) {
      continue;
    }
    recorded++;
    record->set_agent_id(agent.id);
    if (sink_ != nullptr) {
      const TaskLocation found = executions_.FindTask(result->ref());
      const auto& attempts = found.entry().attempts;
      auto attempt = std::find_if(attempts.rbegin(), attempts.rend(), [&](const AttemptRecord& a) {
        return a.attempt == result->ref().attempt();
      });
      if (attempt != attempts.rend()) {
        observations.push_back(ObservationOf(*found.execution, found.entry(), *attempt));
      }
    }
    // Lent, not copied: the store is done with the records when Append
    // returns, and they give the results back below.
    record->unsafe_arena_set_allocated_result(const_cast<v1::TaskResult*>(result));
  }
  // Acknowledged once durable: the agent keeps re-sending until then.
  if (recorded == 0) {
    agent.acks->NothingToRecord(through);
  } else {
    agent.acks->Appended();
    // Observations go to the predictor only once durable: one that a crash
    // could take back must not be learnt.
    journal_.Persist(absl::MakeSpan(records.data(), recorded),
                     [journal = &journal_, acks = agent.acks, through, sink = sink_,
                      observations = std::move(observations)](const absl::Status& status) mutable {
                       if (!status.ok()) journal->Fail(status);
                       acks->Durable(through, status);
                       if (status.ok() && sink != nullptr && !observations.empty()) {
                         sink->Offer(std::move(observations));
                       }
                     });
    for (size_t i = 0; i < recorded; ++i) {
      records[i].mutable_task_result()->unsafe_arena_release_result();
    }
  }
  scratch_ = std::move(records);
}

bool ResultRecorder::HandleResult(const std::string& agent_id, const v1::TaskResult& result,
                                  ParsedOutput& parsed, v1::TaskResultRecorded* record,
                                  Outbox& out) {
  const v1::AttemptRef& ref = result.ref();
  const TaskLocation found = executions_.FindTask(ref);
  if (!found) {
    out.Log(logging::Level::kWarn, "result for an unknown task rejected",
            {{"agent", agent_id}, {"execution", ref.execution()}, {"task", ref.task_id()}});
    return false;
  }
  ExecutionEntry& exec = *found.execution;
  const uint32_t index = found.task;
  TaskEntry& task = found.entry();
  // The attempt number is the fencing token: only the current lease holder
  // may report, and only once.
  const bool current = task.attempt == ref.attempt() && task.agent == agent_id;
  if (!current || (task.state != v1::TASK_LEASED && task.state != v1::TASK_RUNNING &&
                   task.state != v1::TASK_CANCELLED)) {
    // Sent again after a reconnect because its acknowledgement was lost:
    // nothing is wrong, and nothing changes.
    const bool recorded =
        std::any_of(task.attempts.begin(), task.attempts.end(), [&](const AttemptRecord& attempt) {
          return attempt.attempt == ref.attempt() && attempt.agent == agent_id &&
                 attempt.outcome != v1::ATTEMPT_OUTCOME_UNSPECIFIED &&
                 attempt.outcome != v1::ATTEMPT_LOST;
        });
    if (recorded) {
      out.Log(logging::Level::kDebug, "result already recorded; the copy is ignored",
              {{"agent", agent_id},
               {"execution", ref.execution()},
               {"task", ref.task_id()},
               {"attempt", ref.attempt()}});
      return false;
    }
    out.Log(logging::Level::kWarn, "stale result rejected",
            {{"agent", agent_id},
             {"execution", ref.execution()},
             {"task", ref.task_id()},
             {"attempt", ref.attempt()},
             {"current_attempt", task.attempt}});
    return false;
  }
  AttemptRecord& attempt = task.attempts.back();
  attempt.outcome = result.outcome();
  attempt.exit_code = result.exit_code();
  attempt.signal = result.signal();
  attempt.wall_time = absl::ToInt64Nanoseconds(FromProto(result.wall_time()));
  attempt.cpu_time = absl::ToInt64Nanoseconds(FromProto(result.cpu_time()));
  attempt.peak_rss_bytes = result.peak_rss_bytes();
  attempt.error = result.error();
  attempt.stdout_bytes = result.stdout_bytes();
  attempt.stderr_bytes = result.stderr_bytes();
  attempt.end_time = absl::ToUnixNanos(journal_.now());
  if (attempt.start_time == 0) {
    // A builtin task sends no TaskStarted, nor does a process that ended
    // within the agent's start_report_delay: it began its wall time before
    // the result, and not before its lease (the same on replay: both come
    // from the record).
    attempt.start_time = std::max(attempt.lease_time, attempt.end_time - attempt.wall_time);
    // Such a process started all the same (a builtin starts none, nor does
    // an assignment refused before anything ran: no wall time).
    if (attempt.wall_time > 0 &&
        task.spec->builtin().kind() == v1::BuiltinExecutor::KIND_UNSPECIFIED) {
      if (!journal_.replaying()) {
        metrics_.ObserveSubmitToStart(
            absl::ToDoubleSeconds(absl::FromUnixNanos(attempt.start_time) - task.ready_time));
      }
      // Watchers see it start before its outcome, as for a start reported
      // on its own: an event, but no record (a replay of this result makes
      // the same event, so sequences survive a restart).
      if (task.state == v1::TASK_LEASED) machine_.SetTaskState(exec, index, v1::TASK_RUNNING);
    }
  }
  if (!result.stdout_tail().empty() || !result.stderr_tail().empty()) {
    AttemptLogs& logs = task.mutable_details().logs[task.attempt];
    logs.stdout_tail = result.stdout_tail();
    logs.stderr_tail = result.stderr_tail();
    logs.truncated = result.stdout_bytes() > static_cast<int64_t>(result.stdout_tail().size()) ||
                     result.stderr_bytes() > static_cast<int64_t>(result.stderr_tail().size());
  }
  machine_.ReleaseLease(exec, index);
  metrics_.CountOutcome(result.outcome());
  metrics_.ObserveRunDuration(absl::ToDoubleSeconds(FromProto(result.wall_time())));
  // Counted live only: a counter restarts with the process, a replay must
  // not charge old attempts again.
  if (cost_ != nullptr && !journal_.replaying()) {
    cost_->Record(*exec.definition, *task.spec, attempt);
  }
  if (task.state == v1::TASK_CANCELLED) return true;  // cancelled while running

  switch (result.outcome()) {
    case v1::ATTEMPT_SUCCEEDED: {
      if (task.spec->evaluator()) {
        std::string refused =
            evaluators_.Apply(exec, index, result.output_json().empty(), parsed, out);
        if (record != nullptr) {
          if (refused.empty()) {
            record->mutable_decision()->Swap(&parsed.decision);  // applied; not needed here
          } else {
            record->set_output_error(std::move(refused));
          }
        }
        break;
      }
      // Only what the task declares passes on (checked live; a replay
      // takes the verdict recorded with the result).
      if (!journal_.replaying() && parsed.outputs_error.empty()) {
        absl::Status declared = workflow::CheckOutputsDeclared(
            *task.spec, parsed.outputs, exec.declared->passthrough(), "$GYRE_OUTPUT");
        if (!declared.ok()) {
          parsed.outputs_error = std::string(declared.message());
          // The task's code wrote it: running it again would do the same.
          parsed.outputs_error_final = true;
        }
      }
      if (!parsed.outputs_error.empty()) {
        attempt.outcome = v1::ATTEMPT_FAILED;
        attempt.error = parsed.outputs_error;
        if (parsed.outputs_error_final) task.retries_used = task.spec->retry().max_retries();
        if (record != nullptr) {
          record->set_output_error(parsed.outputs_error);
          record->set_output_error_final(parsed.outputs_error_final);
        }
        machine_.FailOrRetry(exec, index, v1::TASK_FAILED, out);
        break;
      }
      if (!parsed.outputs.empty()) {
        if (record != nullptr) {
          record->mutable_outputs()->insert(parsed.outputs.begin(), parsed.outputs.end());
        }
        task.mutable_details().outputs = std::move(parsed.outputs);
      }
      machine_.CompleteTask(exec, index, out);
      break;
    }
    case v1::ATTEMPT_TIMED_OUT:
      machine_.FailOrRetry(exec, index, v1::TASK_TIMED_OUT, out);
      break;
    case v1::ATTEMPT_CANCELLED:
    case v1::ATTEMPT_FAILED:
    default:
      machine_.FailOrRetry(exec, index, v1::TASK_FAILED, out);
      break;
  }
  machine_.UpdateExecutionState(exec, out);
  return true;
}

}  // namespace gyre::orchestrator
