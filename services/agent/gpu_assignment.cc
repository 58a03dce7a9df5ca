#include "services/agent/gpu_assignment.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace gyre::agent {

absl::StatusOr<std::vector<std::string>> GpuAssignment::Acquire(const std::string& holder,
                                                                int count) {
  std::vector<std::string> taken;
  if (count <= 0) return taken;
  absl::MutexLock lock(&mutex_);
  for (const std::string& device : devices_) {
    if (static_cast<int>(taken.size()) == count) break;
    if (holder_of_.count(device) == 0) taken.push_back(device);
  }
  if (static_cast<int>(taken.size()) < count) {
    return absl::ResourceExhaustedError(absl::StrCat("the task needs ", count, " GPUs; ",
                                                     taken.size(), " of the agent's ",
                                                     devices_.size(), " are free"));
  }
  for (const std::string& device : taken) holder_of_[device] = holder;
  return taken;
}

void GpuAssignment::Release(const std::string& holder) {
  absl::MutexLock lock(&mutex_);
  for (auto it = holder_of_.begin(); it != holder_of_.end();) {
    it = it->second == holder ? holder_of_.erase(it) : std::next(it);
  }
}

void GpuAssignment::SetEnvironment(const std::vector<std::string>& assigned,
                                   std::map<std::string, std::string>* env) {
  // A task given no GPU sees none (rather than all of them).
  (*env)["CUDA_VISIBLE_DEVICES"] = absl::StrJoin(assigned, ",");
  (*env)["NVIDIA_VISIBLE_DEVICES"] = assigned.empty() ? "void" : absl::StrJoin(assigned, ",");
}

}  // namespace gyre::agent
