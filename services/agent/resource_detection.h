#ifndef GYRE_SERVICES_AGENT_RESOURCE_DETECTION_H_
#define GYRE_SERVICES_AGENT_RESOURCE_DETECTION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gyre::agent {

// Where the machine's resources are read from. Every path is under `root`
// ("/" on a real machine), so a test can hand a directory holding a fake
// /dev, /proc and /sys/fs/cgroup.
struct DetectionSources {
  std::string root = "/";
  // `nvidia-smi`, asked (`-L`) only when no /dev/nvidiaN device is found;
  // empty: not asked. Looked up in PATH when it has no '/'.
  std::string nvidia_smi = "nvidia-smi";
  // CPUs this process may run on; nullopt: sched_getaffinity.
  std::optional<int> affinity_cpus;
};

// What was found, and where from (for the agent's start log).
struct DetectedCpus {
  double cpus = 0;
  std::string source;  // "sched_getaffinity" or "cgroup cpu.max (/sys/fs/cgroup/...)"
};
struct DetectedMemory {
  int64_t bytes = 0;   // 0: nothing readable
  std::string source;  // "/proc/meminfo" or "cgroup memory.max (...)"
};
struct DetectedGpus {
  std::vector<std::string> devices;  // device ids ("0", "1", ...), in order
  std::string source;                // "/dev/nvidia*", "nvidia-smi -L" or "none found"
};

// CPUs: those of sched_getaffinity, or fewer when a cgroup of this process,
// or one above it, has a quota: v2 cpu.max ("150000 100000" is 1.5) or v1
// cpu.cfs_quota_us / cpu.cfs_period_us.
DetectedCpus DetectCpus(const DetectionSources& sources);

// Memory: MemTotal of /proc/meminfo, or less when a cgroup of this process,
// or one above it, has a lower limit: v2 memory.max or v1
// memory.limit_in_bytes.
DetectedMemory DetectMemory(const DetectionSources& sources);

// NVIDIA GPUs: the /dev/nvidiaN devices (N is the id; nvidiactl and
// nvidia-uvm are not GPUs), else the "GPU N: ..." lines of `nvidia-smi -L`.
DetectedGpus DetectGpus(const DetectionSources& sources);

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_RESOURCE_DETECTION_H_
