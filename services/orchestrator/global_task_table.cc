#include "services/orchestrator/global_task_table.h"

namespace gyre::orchestrator {

GlobalTaskTable::Verdict GlobalTaskTable::Claim(const std::string& identity, const std::string& run,
                                                uint32_t execution, uint32_t task,
                                                const GlobalTask** global) {
  auto [it, inserted] = globals_.try_emplace(identity);
  GlobalTask& entry = it->second;
  *global = &entry;
  if (inserted || entry.owner == run) {
    entry.owner = run;
    return Verdict::kRun;
  }
  if (entry.succeeded) return Verdict::kSatisfied;
  entry.waiters.emplace_back(execution, task);
  return Verdict::kWait;
}

std::vector<std::pair<uint32_t, uint32_t>> GlobalTaskTable::Settle(
    const std::string& identity, const std::string& run, bool succeeded,
    const std::map<std::string, std::string>& outputs) {
  auto it = globals_.find(identity);
  if (it == globals_.end() || it->second.owner != run) return {};
  std::vector<std::pair<uint32_t, uint32_t>> waiters = std::move(it->second.waiters);
  it->second.waiters.clear();
  if (succeeded) {
    it->second.succeeded = true;
    it->second.outputs = outputs;
  } else {
    globals_.erase(it);  // the next waiter to become ready runs it
  }
  return waiters;
}

}  // namespace gyre::orchestrator
