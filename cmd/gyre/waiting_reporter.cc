#include "cmd/gyre/waiting_reporter.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace gyre::cli {
namespace {

// What decides where a task may run, and so why it may not.
std::string PlacementKey(const v1::TaskSpec& task, const std::string& default_queue) {
  std::map<std::string, std::string> selector(task.agent_selector().begin(),
                                              task.agent_selector().end());
  return absl::StrCat(task.queue().empty() ? default_queue : task.queue(), "|",
                      task.resources().cpu(), "|", task.resources().memory_bytes(), "|",
                      task.resources().gpus(), "|",
                      absl::StrJoin(selector, ",", absl::PairFormatter("=")));
}

}  // namespace

WaitingReporter::WaitingReporter(v1::OrchestratorService::Stub* stub, std::string execution,
                                 const v1::WorkflowDefinition& definition, RunConsole* console,
                                 absl::Duration patience)
    : stub_(stub), execution_(std::move(execution)), console_(console), patience_(patience) {
  for (const v1::TaskSpec& task : definition.tasks()) {
    group_of_[task.id()] = PlacementKey(task, definition.default_queue());
  }
  thread_ = std::thread([this] { Loop(); });
}

WaitingReporter::~WaitingReporter() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void WaitingReporter::Update(const std::string& task_id, v1::TaskState state) {
  auto known = group_of_.find(task_id);
  const std::string group = known != group_of_.end() ? known->second : "task " + task_id;
  absl::MutexLock lock(&mutex_);
  if (state == v1::TASK_READY) {
    groups_[group].ready_since.try_emplace(task_id, absl::Now());
    return;
  }
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  it->second.ready_since.erase(task_id);
  // Nothing of the group waits any more: should it stall again, say so again.
  if (it->second.ready_since.empty()) groups_.erase(it);
}

std::vector<WaitingReporter::Question> WaitingReporter::DueQuestions(absl::Time now) {
  // (asked before, ready since): groups never asked go first, so none is
  // starved by ones whose answer is known and merely checked again.
  std::vector<std::pair<std::pair<bool, absl::Time>, Question>> due;
  for (const auto& [key, group] : groups_) {
    const std::pair<const std::string, absl::Time>* longest = nullptr;
    for (const auto& entry : group.ready_since) {
      if (longest == nullptr || entry.second < longest->second) longest = &entry;
    }
    if (longest != nullptr && now - longest->second >= patience_) {
      due.push_back({{group.asked, longest->second}, {key, longest->first}});
    }
  }
  // Without the definition (gyre schedule) every task is its own group:
  // a few are asked a round.
  constexpr size_t kMostQuestionsPerRound = 8;
  const size_t asked = std::min(due.size(), kMostQuestionsPerRound);
  std::partial_sort(due.begin(), due.begin() + static_cast<std::ptrdiff_t>(asked), due.end(),
                    [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Question> questions;
  for (size_t i = 0; i < asked; ++i) questions.push_back(std::move(due[i].second));
  return questions;
}

void WaitingReporter::Loop() {
  const absl::Duration period = std::min(patience_, absl::Seconds(1));
  absl::MutexLock lock(&mutex_);
  while (!mutex_.AwaitWithTimeout(absl::Condition(&stopping_), period)) {
    const std::vector<Question> questions = DueQuestions(absl::Now());
    mutex_.Unlock();
    for (const Question& question : questions) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
      v1::GetTaskRunRequest request;
      request.set_name(absl::StrCat(execution_, "/tasks/", question.task_id));
      v1::TaskRun run;
      // No answer (an orchestrator restarting): ask again next time.
      if (stub_->GetTaskRun(&context, request, &run).ok()) Answer(question, run);
    }
    mutex_.Lock();
  }
}

void WaitingReporter::Answer(const Question& question, const v1::TaskRun& run) {
  std::string line;
  {
    absl::MutexLock lock(&mutex_);
    auto it = groups_.find(question.group);
    // Taken meanwhile: the answer is about a task no longer waiting.
    if (run.state() != v1::TASK_READY || it == groups_.end() ||
        !it->second.ready_since.contains(question.task_id)) {
      return;
    }
    it->second.asked = true;
    if (run.waiting_reason() == it->second.shown_reason) return;
    Group& group = it->second;
    group.shown_reason = run.waiting_reason();
    if (group.shown_reason.empty()) return;  // it waits its turn, or for a slot
    const size_t others = group.ready_since.size() - 1;
    line = absl::StrFormat("  %-24s ready (%s)%s", question.task_id, group.shown_reason,
                           others == 0 ? "" : absl::StrCat("; ", others, " more like it wait too"));
  }
  console_->Line(line);
}

}  // namespace gyre::cli
