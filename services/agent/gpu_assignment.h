#ifndef GYRE_SERVICES_AGENT_GPU_ASSIGNMENT_H_
#define GYRE_SERVICES_AGENT_GPU_ASSIGNMENT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace gyre::agent {

// Hands the agent's GPU devices to tasks, each device to one task at a
// time, and names them in the task's environment. The device list comes
// from the configuration (gpu_devices) or, later, detection. Thread-safe.
class GpuAssignment {
 public:
  explicit GpuAssignment(std::vector<std::string> devices) : devices_(std::move(devices)) {}

  // Takes `count` free devices for `holder`; fails (naming how many are
  // free) when there are not enough.
  absl::StatusOr<std::vector<std::string>> Acquire(const std::string& holder, int count);
  // Gives back what `holder` took (nothing if it took none).
  void Release(const std::string& holder);

  bool has_devices() const { return !devices_.empty(); }

  // CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES for a task given
  // `assigned` on an agent with GPUs: the devices, or none at all.
  static void SetEnvironment(const std::vector<std::string>& assigned,
                             std::map<std::string, std::string>* env);

 private:
  const std::vector<std::string> devices_;
  absl::Mutex mutex_;
  std::map<std::string, std::string> holder_of_ ABSL_GUARDED_BY(mutex_);  // device -> task
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_GPU_ASSIGNMENT_H_
