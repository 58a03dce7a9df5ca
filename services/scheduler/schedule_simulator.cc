#include "services/scheduler/schedule_simulator.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <random>
#include <tuple>

#include "absl/strings/str_format.h"
#include "services/scheduler/duration_estimator.h"
#include "services/scheduler/upward_rank.h"

namespace gyre::scheduler {
namespace {

struct ReadyTask {
  int execution;
  int task;
  double ready_time;
  uint64_t sequence;
};

// The state of one execution during a run.
struct ExecutionRun {
  const SimulatedWorkflow* workflow = nullptr;
  double arrival = 0;
  bool arrived = false;
  int unfinished = 0;
  std::vector<int> unmet;          // parents not finished, per task
  std::vector<double> true_ranks;  // upward ranks from the true durations
  double true_remaining = 0;       // true seconds of tasks not finished
  // kGyre's view: estimates, refreshed when the estimator learnt something.
  std::vector<bool> finished;
  std::vector<double> estimated_ranks;
  double estimated_remaining = 0;
  uint64_t estimated_generation = ~uint64_t{0};
  // The SimulationPredictor's seconds per task (empty: none), and how many
  // times they were asked for: a change makes the estimates stale.
  std::vector<double> predicted;
  uint64_t predicted_version = 0;
  uint64_t estimated_predicted_version = 0;
};

// A completion event; ordered by time, then a sequence for determinism.
struct Completion {
  double time;
  uint64_t sequence;
  int execution;
  int task;
  bool operator>(const Completion& other) const {
    return std::tie(time, sequence) > std::tie(other.time, other.sequence);
  }
};

struct RunningTask {
  int execution;
  int task;
  double start;
};

void RefreshEstimates(const DurationEstimator& estimator, ExecutionRun* run) {
  if (run->estimated_generation == estimator.generation() &&
      run->estimated_predicted_version == run->predicted_version) {
    return;
  }
  const SimulatedWorkflow& w = *run->workflow;
  std::vector<double> estimates(w.durations.size());
  double remaining = 0;
  for (size_t i = 0; i < estimates.size(); ++i) {
    // As BatchScheduler does with a task's predicted_seconds.
    estimates[i] =
        estimator.EstimateSeconds(w.types[i], run->predicted.empty() ? 0 : run->predicted[i]);
    if (!run->finished[i]) remaining += estimates[i];
  }
  run->estimated_ranks = UpwardRanksInOrder(w.children, w.topological_order, estimates);
  run->estimated_remaining = remaining;
  run->estimated_generation = estimator.generation();
  run->estimated_predicted_version = run->predicted_version;
}

// Asks `predictor` for every unfinished task of execution `e`.
void Predict(SimulationPredictor& predictor, int e, ExecutionRun* run) {
  const size_t n = run->workflow->durations.size();
  run->predicted.resize(n, 0);
  for (size_t i = 0; i < n; ++i) {
    if (!run->finished[i]) run->predicted[i] = predictor.PredictSeconds(e, static_cast<int>(i));
  }
  ++run->predicted_version;
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  // Nearest rank.
  const size_t rank = static_cast<size_t>(std::ceil(fraction * values.size()));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

}  // namespace

absl::StatusOr<SimulationPolicy> ParseSimulationPolicy(absl::string_view name) {
  if (name == "fifo") return SimulationPolicy::kFifo;
  if (name == "heft") return SimulationPolicy::kHeft;
  if (name == "srpt") return SimulationPolicy::kSrpt;
  if (name == "gyre") return SimulationPolicy::kGyre;
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown policy \"%s\": expected fifo, heft, srpt or gyre", name));
}

absl::string_view SimulationPolicyName(SimulationPolicy policy) {
  switch (policy) {
    case SimulationPolicy::kFifo:
      return "fifo";
    case SimulationPolicy::kHeft:
      return "heft";
    case SimulationPolicy::kSrpt:
      return "srpt";
    case SimulationPolicy::kGyre:
      return "gyre";
  }
  return "?";
}

SimulatedWorkflow SimulatedWorkflowFromTrace(const wfcommons::Trace& trace) {
  SimulatedWorkflow w;
  w.name = trace.name;
  for (const wfcommons::TraceTask& task : trace.tasks) {
    w.types.push_back(task.type);
    w.durations.push_back(task.runtime_seconds);
    w.children.push_back(task.children);
    w.parent_counts.push_back(static_cast<int>(task.parents.size()));
    w.total_work_seconds += task.runtime_seconds;
  }
  w.topological_order = wfcommons::TopologicalOrder(trace);
  return w;
}

absl::StatusOr<SimulationResult> Simulate(const std::vector<SimulatedWorkflow>& workflows,
                                          SimulationPolicy policy,
                                          const SimulationOptions& options) {
  if (workflows.empty()) return absl::InvalidArgumentError("simulate: no workflow given");
  if (options.slots < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("simulate: --slots is %d: must be at least 1", options.slots));
  }
  if (absl::Status s = options.ranking.Validate(); !s.ok()) return s;

  const int n = static_cast<int>(workflows.size());
  SimulationResult result;
  std::vector<ExecutionRun> runs(n);
  std::mt19937_64 rng(options.seed);
  std::exponential_distribution<double> gap(
      options.mean_arrival_gap_seconds > 0 ? 1.0 / options.mean_arrival_gap_seconds : 1.0);
  double arrival = 0;
  for (int e = 0; e < n; ++e) {
    if (e > 0 && options.mean_arrival_gap_seconds > 0) arrival += gap(rng);
    ExecutionRun& run = runs[e];
    const SimulatedWorkflow& w = workflows[e];
    run.workflow = &w;
    run.arrival = arrival;
    run.unfinished = static_cast<int>(w.durations.size());
    run.unmet = w.parent_counts;
    run.true_ranks = UpwardRanksInOrder(w.children, w.topological_order, w.durations);
    run.true_remaining = w.total_work_seconds;
    run.finished.assign(w.durations.size(), false);
    result.arrival_seconds.push_back(arrival);
    result.start_seconds.emplace_back(w.durations.size(), -1.0);
  }
  result.flow_seconds.assign(n, 0);

  OnlineDurationEstimator estimator(options.prior_seconds);
  const TaskRanker ranker(options.ranking);
  std::vector<ReadyTask> ready;
  std::vector<RunningTask> in_flight;  // kGyre only
  std::priority_queue<Completion, std::vector<Completion>, std::greater<>> running;
  uint64_t sequence = 0;
  int free_slots = options.slots;
  int next_arrival = 0;
  double busy_slot_seconds = 0;
  double now = 0;
  int executions_left = n;

  auto make_ready = [&](int e, int task) { ready.push_back({e, task, now, sequence++}); };
  SimulationPredictor* const predictor =
      policy == SimulationPolicy::kGyre ? options.predictor : nullptr;
  double predicted_at = 0;
  bool observed_since_prediction = false;
  auto arrive = [&](int e) {
    ExecutionRun& run = runs[e];
    run.arrived = true;
    if (predictor != nullptr) Predict(*predictor, e, &run);
    for (int t : run.workflow->topological_order) {
      if (run.unmet[t] == 0) make_ready(e, t);
    }
    if (run.unfinished == 0) {
      --executions_left;  // an empty workflow ends as it arrives
    }
  };
  // Index into `ready` of the task to run next.
  auto pick = [&]() -> size_t {
    switch (policy) {
      case SimulationPolicy::kFifo:
        return 0;  // `ready` is kept in the order tasks became ready
      case SimulationPolicy::kHeft:
        return std::max_element(ready.begin(), ready.end(),
                                [&](const ReadyTask& a, const ReadyTask& b) {
                                  const double ra = runs[a.execution].true_ranks[a.task];
                                  const double rb = runs[b.execution].true_ranks[b.task];
                                  return ra != rb ? ra < rb : a.sequence > b.sequence;
                                }) -
               ready.begin();
      case SimulationPolicy::kSrpt:
        return std::min_element(ready.begin(), ready.end(),
                                [&](const ReadyTask& a, const ReadyTask& b) {
                                  const ExecutionRun& ea = runs[a.execution];
                                  const ExecutionRun& eb = runs[b.execution];
                                  if (ea.true_remaining != eb.true_remaining) {
                                    return ea.true_remaining < eb.true_remaining;
                                  }
                                  const double ra = ea.true_ranks[a.task];
                                  const double rb = eb.true_ranks[b.task];
                                  return ra != rb ? ra > rb : a.sequence < b.sequence;
                                }) -
               ready.begin();
      case SimulationPolicy::kGyre:
        break;
    }
    return 0;
  };
  // kGyre ranks the whole ready set once per round with the real ranker.
  auto gyre_picks = [&](int k) {
    std::vector<ExecutionShare> shares;
    std::vector<int> share_of(n, -1);
    for (int e = 0; e < n; ++e) {
      if (!runs[e].arrived || runs[e].unfinished == 0) continue;
      RefreshEstimates(estimator, &runs[e]);
      share_of[e] = static_cast<int>(shares.size());
      shares.push_back({runs[e].estimated_remaining, 1.0});
    }
    std::vector<RankTask> tasks;
    tasks.reserve(ready.size());
    for (const ReadyTask& r : ready) {
      tasks.push_back({0, now - r.ready_time, runs[r.execution].estimated_ranks[r.task],
                       share_of[r.execution], r.sequence});
    }
    return ranker.Top(tasks, shares, options.slots, k);
  };
  auto start = [&](const ReadyTask& r) {
    const double duration = runs[r.execution].workflow->durations[r.task];
    result.start_seconds[r.execution][r.task] = now;
    running.push({now + duration, sequence++, r.execution, r.task});
    if (policy == SimulationPolicy::kGyre) in_flight.push_back({r.execution, r.task, now});
    busy_slot_seconds += duration;
    --free_slots;
  };
  auto dispatch = [&]() {
    if (free_slots == 0 || ready.empty()) return;
    if (policy == SimulationPolicy::kGyre) {
      if (predictor != nullptr && observed_since_prediction &&
          now - predicted_at >= options.prediction_refresh_seconds) {
        for (int e = 0; e < n; ++e) {
          if (runs[e].arrived && runs[e].unfinished > 0) Predict(*predictor, e, &runs[e]);
        }
        predicted_at = now;
        observed_since_prediction = false;
      }
      // What production sees of running tasks: how long each has run.
      estimator.ClearRunning();
      for (const RunningTask& r : in_flight) {
        estimator.ObserveRunning(runs[r.execution].workflow->types[r.task], now - r.start);
      }
      std::vector<int> chosen = gyre_picks(free_slots);
      std::vector<bool> taken(ready.size(), false);
      for (int i : chosen) {
        start(ready[i]);
        taken[i] = true;
      }
      size_t kept = 0;
      for (size_t i = 0; i < ready.size(); ++i) {
        if (!taken[i]) ready[kept++] = ready[i];
      }
      ready.resize(kept);
      return;
    }
    while (free_slots > 0 && !ready.empty()) {
      const size_t i = pick();
      start(ready[i]);
      ready.erase(ready.begin() + static_cast<std::ptrdiff_t>(i));
    }
  };

  while (executions_left > 0) {
    // The next event time: an arrival or a completion, whichever is first.
    double next = std::numeric_limits<double>::infinity();
    if (next_arrival < n) next = runs[next_arrival].arrival;
    if (!running.empty()) next = std::min(next, running.top().time);
    if (std::isinf(next)) {
      return absl::InternalError("simulate: nothing running and nothing ready, but work remains");
    }
    now = next;
    while (next_arrival < n && runs[next_arrival].arrival <= now) arrive(next_arrival++);
    while (!running.empty() && running.top().time <= now) {
      const Completion done = running.top();
      running.pop();
      ++free_slots;
      ExecutionRun& run = runs[done.execution];
      const SimulatedWorkflow& w = *run.workflow;
      run.finished[done.task] = true;
      run.true_remaining -= w.durations[done.task];
      if (policy == SimulationPolicy::kGyre) {
        estimator.Observe(w.types[done.task], w.durations[done.task]);
        if (predictor != nullptr) {
          predictor->Observe(done.execution, done.task, w.durations[done.task]);
          observed_since_prediction = true;
        }
        auto it = std::find_if(in_flight.begin(), in_flight.end(), [&](const RunningTask& r) {
          return r.execution == done.execution && r.task == done.task;
        });
        *it = in_flight.back();
        in_flight.pop_back();
      }
      for (int child : w.children[done.task]) {
        if (--run.unmet[child] == 0) make_ready(done.execution, child);
      }
      if (--run.unfinished == 0) {
        result.flow_seconds[done.execution] = now - run.arrival;
        result.makespan_seconds = std::max(result.makespan_seconds, now);
        --executions_left;
      }
    }
    dispatch();
  }

  double flow_sum = 0;
  for (double f : result.flow_seconds) flow_sum += f;
  result.mean_flow_seconds = flow_sum / n;
  result.p95_flow_seconds = Percentile(result.flow_seconds, 0.95);
  result.mean_utilisation = result.makespan_seconds > 0
                                ? busy_slot_seconds / (options.slots * result.makespan_seconds)
                                : 0;
  return result;
}

}  // namespace gyre::scheduler
