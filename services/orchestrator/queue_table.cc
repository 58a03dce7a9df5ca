#include "services/orchestrator/queue_table.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace gyre::orchestrator {

uint32_t QueueTable::IndexOf(const std::string& name) {
  auto it = by_name_.find(name);
  if (it != by_name_.end()) return it->second;
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = static_cast<uint32_t>(queues_.size());
    queues_.emplace_back();
  }
  queues_[index] = std::make_unique<Queue>();
  queues_[index]->name = name;
  by_name_.emplace(name, index);
  return index;
}

absl::Status QueueTable::CheckRoom(absl::Span<const std::string* const> names,
                                   absl::string_view what) const {
  if (by_name_.size() + names.size() <= kMaxQueues) return absl::OkStatus();
  absl::flat_hash_set<absl::string_view> unknown;
  for (const std::string* name : names) {
    if (!by_name_.contains(*name)) unknown.insert(*name);
  }
  if (by_name_.size() + unknown.size() <= kMaxQueues) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat(what, ": ", unknown.size(), " new queue names would pass the limit of ",
                   kMaxQueues, " queue names the orchestrator knows at once (", by_name_.size(),
                   " known now: listed by agents or named by executions' tasks)"));
}

void QueueTable::Unserve(uint32_t index) {
  Queue& queue = *queues_[index];
  queue.agents--;
  if (!queue.unused()) return;
  // Listed only by agents, and none lists it now: forgotten, so that names
  // agents come and go with do not pile up. No task refers to the index, so
  // it can be reused.
  if (queue.exported) metrics_.RemoveQueue(queue.name);
  by_name_.erase(queue.name);
  queues_[index] = nullptr;
  free_.push_back(index);
}

}  // namespace gyre::orchestrator
