#include "services/orchestrator/load_snapshot.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/strip.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

bool Finished(v1::TaskState state) {
  return state != v1::TASK_PENDING && state != v1::TASK_READY && state != v1::TASK_LEASED &&
         state != v1::TASK_RUNNING;
}

bool Running(v1::TaskState state) { return state == v1::TASK_LEASED || state == v1::TASK_RUNNING; }

// Expected seconds from now until each unfinished task of `exec` is done
// (finished tasks: 0), by an iterative depth-first walk of the parents
// (a DAG may be a 100,000-task chain: no recursion).
std::vector<double> ExpectedDone(const ExecutionEntry& exec, absl::Time now,
                                 const LoadSnapshotOptions& options,
                                 std::vector<double>* earliest_start) {
  const size_t n = exec.tasks.size();
  std::vector<double> done(n, -1);
  earliest_start->assign(n, 0);
  std::vector<std::pair<uint32_t, size_t>> stack;  // task, next parent to look at
  for (uint32_t root = 0; root < n; ++root) {
    if (done[root] >= 0) continue;
    stack.push_back({root, 0});
    while (!stack.empty()) {
      auto& [task, next] = stack.back();
      const TaskEntry& entry = exec.tasks[task];
      if (Finished(entry.state)) {
        done[task] = 0;
        stack.pop_back();
        continue;
      }
      if (next < entry.parents.size()) {
        const uint32_t parent = entry.parents[next++];
        if (done[parent] < 0) stack.push_back({parent, 0});
        continue;
      }
      const double expected = ExpectedTaskSeconds(entry, options);
      if (Running(entry.state)) {
        const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - entry.lease_time));
        done[task] = std::max(expected - elapsed, 0.1 * expected);
      } else {
        double start = 0;
        for (uint32_t parent : entry.parents) start = std::max(start, done[parent]);
        (*earliest_start)[task] = start;
        done[task] = start + expected;
      }
      stack.pop_back();
    }
  }
  return done;
}

}  // namespace

double ExpectedTaskSeconds(const v1::TaskSpec& spec, const LoadSnapshotOptions& options) {
  if (spec.builtin().kind() == v1::BuiltinExecutor::SLEEP) {
    return static_cast<double>(spec.builtin().duration().seconds()) +
           spec.builtin().duration().nanos() / 1e9;
  }
  if (spec.builtin().kind() == v1::BuiltinExecutor::NOOP) return 0;
  return options.default_task_seconds;
}

double ExpectedTaskSeconds(const TaskEntry& task, const LoadSnapshotOptions& options) {
  if (task.details != nullptr && task.details->prediction != nullptr) {
    return std::max(0.0, task.details->prediction->duration_seconds);
  }
  return ExpectedTaskSeconds(*task.spec, options);
}

LoadSnapshot TakeLoadSnapshot(ExecutionTable& executions, const std::vector<v1::QueueInfo>& queues,
                              absl::Time now, const LoadSnapshotOptions& options) {
  LoadSnapshot snapshot;
  for (const v1::QueueInfo& queue : queues) {
    // QueueInfo names are resource names ("queues/{name}").
    absl::string_view name = queue.name();
    absl::ConsumePrefix(&name, "queues/");
    WorkerTypeLoad& load = snapshot[std::string(name)];
    const int64_t slots = queue.free_slots() + queue.running();
    if (queue.agents() > 0 && slots > 0) {
      load.slots_per_agent = static_cast<int32_t>(
          std::max<int64_t>(1, std::llround(static_cast<double>(slots) / queue.agents())));
    }
  }
  const double window = absl::ToDoubleSeconds(options.arrival_window);
  std::map<std::string, std::pair<int64_t, double>> arrived;  // tasks, their seconds
  std::vector<double> earliest_start;
  for (size_t e = 0; e < executions.size(); ++e) {
    const ExecutionEntry* found = executions.Get(static_cast<uint32_t>(e));
    if (found == nullptr) continue;  // forgotten by retention
    const ExecutionEntry& exec = *found;
    if (exec.state != v1::EXECUTION_PENDING && exec.state != v1::EXECUTION_RUNNING) continue;
    const std::string default_queue =
        exec.definition->default_queue().empty() ? "default" : exec.definition->default_queue();
    const bool recent = window > 0 && now - exec.create_time <= options.arrival_window;
    const std::vector<double> done = ExpectedDone(exec, now, options, &earliest_start);
    for (size_t t = 0; t < exec.tasks.size(); ++t) {
      const TaskEntry& task = exec.tasks[t];
      const std::string& queue = task.spec->queue().empty() ? default_queue : task.spec->queue();
      if (recent) {
        auto& [count, seconds] = arrived[queue];
        ++count;
        seconds += ExpectedTaskSeconds(task, options);
      }
      if (Finished(task.state)) continue;
      WorkerTypeLoad& load = snapshot[queue];
      if (Running(task.state)) {
        load.running_remaining_seconds.push_back(done[t]);
      } else {
        v1::PendingTaskLoad& pending = load.pending.emplace_back();
        pending.set_earliest_start_seconds(earliest_start[t]);
        pending.set_duration_seconds(ExpectedTaskSeconds(task, options));
      }
    }
  }
  for (const auto& [queue, tally] : arrived) {
    WorkerTypeLoad& load = snapshot[queue];
    load.arrival_rate_per_second = static_cast<double>(tally.first) / window;
    load.arrival_task_seconds = tally.second / static_cast<double>(tally.first);
  }
  return snapshot;
}

}  // namespace gyre::orchestrator
