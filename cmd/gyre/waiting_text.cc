#include "cmd/gyre/waiting_text.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

absl::Time FromTimestamp(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
}

std::string At(const google::protobuf::Timestamp& time, absl::Time now) {
  const absl::Time at = FromTimestamp(time);
  const absl::Duration in = absl::Trunc(at - now, absl::Seconds(1));
  return absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", at, absl::UTCTimeZone()),
                      in > absl::ZeroDuration()
                          ? absl::StrCat(" (in ", absl::FormatDuration(in), ")")
                          : " (now, overdue)");
}

std::string AgentText(const v1::CandidateAgent& agent) {
  const std::map<std::string, std::string> sorted(agent.labels().begin(), agent.labels().end());
  std::vector<std::string> labels;
  for (const auto& [key, value] : sorted) labels.push_back(absl::StrCat(key, "=", value));
  return absl::StrCat(
      agent.agent(), ": labels {", absl::StrJoin(labels, ", "), "}, cpu ",
      agent.cpu() > 0 ? absl::StrCat(agent.cpu()) : "any", ", memory ",
      agent.memory_bytes() > 0 ? absl::StrCat(agent.memory_bytes(), " bytes") : "any", ", gpus ",
      agent.gpus(), ", ", agent.free_slots(), " of ", agent.slots(), " slot(s) free");
}

}  // namespace

std::string WaitingKindWord(v1::WaitingExplanation::Kind kind) {
  std::string word = v1::WaitingExplanation::Kind_Name(kind);
  absl::AsciiStrToLower(&word);
  return absl::StrReplaceAll(word, {{"_", " "}});
}

std::vector<std::string> WaitingLines(const v1::WaitingExplanation& why, absl::Time now) {
  std::vector<std::string> lines;
  lines.push_back(absl::StrCat(WaitingKindWord(why.kind()), ": ", why.message()));
  if (why.waiting_on_size() > 0) {
    std::vector<std::string> deps;
    for (const v1::DependencyState& dep : why.waiting_on()) {
      std::string state = v1::TaskState_Name(dep.state());
      absl::AsciiStrToLower(&state);
      deps.push_back(absl::StrCat(dep.task_id(), " (", absl::StripPrefix(state, "task_"), ")"));
    }
    lines.push_back(absl::StrCat("waiting on: ", absl::StrJoin(deps, ", ")));
  }
  if (!why.failing_requirement().empty()) {
    lines.push_back(absl::StrCat("failing requirement: ", why.failing_requirement()));
  }
  if (why.has_best_candidate()) {
    lines.push_back(absl::StrCat(why.kind() == v1::WaitingExplanation::NO_MATCHING_AGENT
                                     ? "closest agent: "
                                     : "first agent to free: ",
                                 AgentText(why.best_candidate())));
  }
  if (why.queue_position() > 0) {
    lines.push_back(absl::StrCat("queue position: ", why.queue_position(), " (of the ready tasks ",
                                 "that ", why.matching_agents(), " matching agent(s), ",
                                 why.matching_slots(), " slot(s), could run)"));
  }
  if (why.has_estimated_start()) {
    lines.push_back(absl::StrCat("estimated start: ", At(why.estimated_start(), now)));
  }
  if (why.has_retry_at()) lines.push_back(absl::StrCat("retry at: ", At(why.retry_at(), now)));
  if (why.pool_max_workers() > 0) {
    lines.push_back(absl::StrCat("worker pool max: ", why.pool_max_workers(), " agent(s)"));
  }
  return lines;
}

}  // namespace gyre::cli
