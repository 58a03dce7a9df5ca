#ifndef GYRE_LIBS_COMMON_TASK_COST_H_
#define GYRE_LIBS_COMMON_TASK_COST_H_

#include <algorithm>

namespace gyre {

// What one worker type costs per hour (gyre.v1.WorkerPrice as plain data,
// so that code without the protos can price work).
struct ResourcePrices {
  double core_hour = 0;
  double gib_hour = 0;
  double gpu_hour = 0;
};

// What a task holds while it runs.
struct ResourceHold {
  double cores = 0;
  double memory_bytes = 0;
  double gpus = 0;
  double seconds = 0;
};

// The one cost formula, used for an attempt's actual cost (the
// orchestrator's gyre_task_cost_total) and for a predicted one (the
// predictor, gyre plan):
//   hours x (cores x core_hour + GiB x gib_hour + gpus x gpu_hour)
// Negative inputs count as 0.
inline double TaskCost(const ResourcePrices& price, const ResourceHold& hold) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  const double hours = std::max(0.0, hold.seconds) / 3600.0;
  return hours * (std::max(0.0, hold.cores) * price.core_hour +
                  std::max(0.0, hold.memory_bytes) / kGiB * price.gib_hour +
                  std::max(0.0, hold.gpus) * price.gpu_hour);
}

// What an attempt is charged for: the declared cores and memory when the
// task declares them (a reservation is paid whether used or not), else what
// it used (cpu_time / wall time, peak RSS); GPUs as declared.
inline ResourceHold ChargedHold(double declared_cores, double declared_memory_bytes,
                                double declared_gpus, double wall_seconds, double cpu_seconds,
                                double peak_rss_bytes) {
  ResourceHold hold;
  hold.seconds = wall_seconds;
  hold.cores = declared_cores > 0 ? declared_cores
               : wall_seconds > 0 ? cpu_seconds / wall_seconds
                                  : 0;
  hold.memory_bytes = declared_memory_bytes > 0 ? declared_memory_bytes : peak_rss_bytes;
  hold.gpus = declared_gpus;
  return hold;
}

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_TASK_COST_H_
