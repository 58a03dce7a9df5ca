// Reactive vs forecast-driven autoscaling on WfCommons traces (issue 24),
// simulated: the traces' workflows arrive with seeded exponential gaps on
// one worker type; workers (slots_per_worker slots each) take
// --startup_delay (30 s) from being asked for to taking work; every
// --control_period an autoscaler sets the target number of workers:
//
//   reactive:  orchestrator_desired_workers' rule, DesiredWorkers(queued,
//              running, {min 0, max, factor = slots_per_worker})
//   forecast:  orchestrator_forecast_workers{horizon="60s"}: the peak of
//              gyre-predictor's ForecastQueueLoad over the next 60 s, from
//              the tasks not started (earliest start by DAG position), the
//              running tasks' remaining time and the recent arrival rate,
//              clamped the same way
//
// Scale-up starts workers at once; scale-down stops idle workers only.
// Every task takes its recorded runtime; the forecast is given each task's
// running-mean duration per task type (what a predictor knows), 60 s before
// any finished. Prints makespan (first arrival to last completion) and
// worker-seconds (workers asked for, starting or up, integrated over time)
// for each policy, from the same arrivals.
//
//   build/bench/scaling_sim tests/data/wfcommons   (or any directory of WfCommons traces)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/time.h"
#include "libs/wfcommons/wfcommons_trace.h"
#include "services/orchestrator/desired_workers.h"
#include "services/predictor/load_forecast.h"
#include "services/scheduler/schedule_simulator.h"

ABSL_FLAG(double, arrival_gap, 300, "mean exponential gap between workflows' arrivals, seconds");
ABSL_FLAG(uint64_t, seed, 1, "seed of the arrival gaps");
ABSL_FLAG(int, slots_per_worker, 4, "task slots of one worker");
ABSL_FLAG(int, max_workers, 200, "the pool's max");
ABSL_FLAG(double, startup_delay, 30, "seconds from asking for a worker to its taking work");
ABSL_FLAG(double, control_period, 15, "seconds between autoscaler decisions");

namespace {

using gyre::scheduler::SimulatedWorkflow;

std::vector<std::string> TraceFiles(int argc, char** argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path path(argv[i]);
    if (std::filesystem::is_directory(path)) {
      std::vector<std::string> found;
      for (const auto& entry : std::filesystem::recursive_directory_iterator(path)) {
        if (entry.is_regular_file() && entry.path().extension() == ".json") {
          found.push_back(entry.path().string());
        }
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(path.string());
    }
  }
  return files;
}

struct Outcome {
  double makespan = 0;
  double worker_seconds = 0;
  double peak_workers = 0;
};

// One run of every workflow under one scaling policy; 1 s time steps.
class ScalingRun {
 public:
  ScalingRun(const std::vector<SimulatedWorkflow>& workflows, const std::vector<double>& arrivals,
             bool forecast)
      : workflows_(workflows), arrivals_(arrivals), forecast_(forecast) {
    policy_.min_workers = 0;
    policy_.max_workers = absl::GetFlag(FLAGS_max_workers);
    policy_.tasks_per_worker = absl::GetFlag(FLAGS_slots_per_worker);
    for (const SimulatedWorkflow& w : workflows_) {
      remaining_parents_.push_back(w.parent_counts);
      start_.emplace_back(w.durations.size(), -1);
      end_.emplace_back(w.durations.size(), -1);
    }
  }

  Outcome Run() {
    const int slots_per_worker = absl::GetFlag(FLAGS_slots_per_worker);
    const double period = absl::GetFlag(FLAGS_control_period);
    size_t arrived = 0;
    size_t total_tasks = 0;
    for (const SimulatedWorkflow& w : workflows_) total_tasks += w.durations.size();
    size_t done = 0;
    Outcome out;
    for (double t = 0;; t += 1) {
      while (arrived < workflows_.size() && arrivals_[arrived] <= t) {
        const SimulatedWorkflow& w = workflows_[arrived];
        for (size_t i = 0; i < w.durations.size(); ++i) {
          if (w.parent_counts[i] == 0)
            ready_.push_back({static_cast<int>(arrived), static_cast<int>(i)});
          recent_arrivals_.push_back({t, ExpectedSeconds(w, static_cast<int>(i))});
        }
        ++arrived;
      }
      // Completions at or before t.
      while (!running_.empty() && running_.top().first <= t) {
        const auto [end, task] = running_.top();
        running_.pop();
        Complete(task);
        ++done;
      }
      if (done == total_tasks) {
        out.makespan = t - arrivals_.front();
        break;
      }
      // Workers whose start-up is over take work.
      while (!starting_.empty() && starting_.front() <= t) {
        starting_.pop_front();
        ++up_;
      }
      if (std::fmod(t, period) == 0) Scale(t);
      // Dispatch FIFO onto free slots.
      while (!ready_.empty() && static_cast<int>(running_.size()) < up_ * slots_per_worker) {
        const Task task = ready_.front();
        ready_.pop_front();
        start_[task.w][task.i] = t;
        running_.push({t + std::max(1.0, std::ceil(workflows_[task.w].durations[task.i])), task});
      }
      const double workers = up_ + static_cast<double>(starting_.size());
      out.worker_seconds += workers;
      out.peak_workers = std::max(out.peak_workers, workers);
    }
    return out;
  }

 private:
  struct Task {
    int w;
    int i;
    bool operator>(const Task& o) const { return w != o.w ? w > o.w : i > o.i; }
  };
  using Running = std::pair<double, Task>;
  struct Later {
    bool operator()(const Running& a, const Running& b) const {
      return a.first != b.first ? a.first > b.first : a.second > b.second;
    }
  };

  // What a predictor would say: the running mean of the type's finished
  // tasks, 60 s before any.
  double ExpectedSeconds(const SimulatedWorkflow& w, int i) const {
    auto it = type_means_.find(w.types[i]);
    return it == type_means_.end() ? 60.0 : it->second.first / it->second.second;
  }

  void Complete(const Task& task) {
    const SimulatedWorkflow& w = workflows_[task.w];
    end_[task.w][task.i] = 1;
    auto& mean = type_means_[w.types[task.i]];
    mean.first += w.durations[task.i];
    mean.second += 1;
    for (int child : w.children[task.i]) {
      if (--remaining_parents_[task.w][child] == 0) ready_.push_back({task.w, child});
    }
  }

  double Target(double t) {
    if (!forecast_) {
      const int64_t running = static_cast<int64_t>(running_.size());
      return static_cast<double>(gyre::orchestrator::DesiredWorkers(
          static_cast<int64_t>(ready_.size()), running, policy_));
    }
    gyre::v1::ForecastQueueLoadRequest request;
    request.mutable_horizon()->set_seconds(60);
    request.mutable_step()->set_seconds(10);
    request.set_slots_per_agent(absl::GetFlag(FLAGS_slots_per_worker));
    // Running tasks' remaining time and the unfinished tasks' earliest
    // start, from expected durations, per arrived workflow.
    std::priority_queue<Running, std::vector<Running>, Later> copy = running_;
    std::map<std::pair<int, int>, double> done_at;  // expected completion of running tasks
    while (!copy.empty()) {
      const Task task = copy.top().second;
      copy.pop();
      const double expected = ExpectedSeconds(workflows_[task.w], task.i);
      const double remaining = std::max(expected - (t - start_[task.w][task.i]), 0.1 * expected);
      request.add_running_remaining_seconds(remaining);
      done_at[{task.w, task.i}] = remaining;
    }
    for (size_t w = 0; w < workflows_.size() && arrivals_[w] <= t; ++w) {
      const SimulatedWorkflow& wf = workflows_[w];
      // Parents before children: a task can start when its parents are
      // expected to finish (done: now; running: their remaining time).
      std::vector<double> start(wf.durations.size(), 0);
      for (int i : wf.topological_order) {
        double finish = 0;
        auto running = done_at.find({static_cast<int>(w), i});
        if (end_[w][i] >= 0) {
          finish = 0;
        } else if (running != done_at.end()) {
          finish = running->second;
        } else {
          const double expected = ExpectedSeconds(wf, i);
          finish = start[i] + expected;
          gyre::v1::PendingTaskLoad* pending = request.add_pending();
          pending->set_earliest_start_seconds(start[i]);
          pending->set_duration_seconds(expected);
        }
        for (int child : wf.children[i]) start[child] = std::max(start[child], finish);
      }
    }
    while (!recent_arrivals_.empty() && recent_arrivals_.front().first < t - 300) {
      recent_arrivals_.pop_front();
    }
    double seconds = 0;
    for (const auto& [at, expected] : recent_arrivals_) seconds += expected;
    if (!recent_arrivals_.empty()) {
      request.set_arrival_rate_per_second(static_cast<double>(recent_arrivals_.size()) / 300);
      request.set_arrival_task_seconds(seconds / static_cast<double>(recent_arrivals_.size()));
    }
    absl::StatusOr<gyre::v1::ForecastQueueLoadResponse> forecast =
        gyre::predictor::ForecastQueueLoad(request, absl::UnixEpoch());
    double peak = 0;
    if (forecast.ok()) {
      for (const auto& point : forecast->points()) peak = std::max(peak, point.desired_workers());
    }
    return std::clamp(peak, static_cast<double>(policy_.min_workers),
                      static_cast<double>(policy_.max_workers));
  }

  void Scale(double t) {
    const double target = Target(t);
    const double delay = absl::GetFlag(FLAGS_startup_delay);
    const int slots_per_worker = absl::GetFlag(FLAGS_slots_per_worker);
    double have = up_ + static_cast<double>(starting_.size());
    while (have < target) {
      starting_.push_back(t + delay);
      have += 1;
    }
    // Stop idle workers (never a busy one, never a starting one).
    const int busy_workers =
        (static_cast<int>(running_.size()) + slots_per_worker - 1) / slots_per_worker;
    while (have > target && up_ > busy_workers) {
      --up_;
      have -= 1;
    }
  }

  const std::vector<SimulatedWorkflow>& workflows_;
  const std::vector<double>& arrivals_;
  const bool forecast_;
  gyre::orchestrator::WorkerPoolPolicy policy_;
  std::vector<std::vector<int>> remaining_parents_;
  std::vector<std::vector<double>> start_;
  std::vector<std::vector<double>> end_;
  std::deque<Task> ready_;
  std::priority_queue<Running, std::vector<Running>, Later> running_;
  std::deque<double> starting_;  // when each starting worker is up
  int up_ = 0;
  std::deque<std::pair<double, double>> recent_arrivals_;        // time, expected seconds
  std::map<std::string, std::pair<double, double>> type_means_;  // sum, count
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::vector<std::string> files = TraceFiles(static_cast<int>(args.size()), args.data());
  if (files.empty()) {
    std::fprintf(stderr, "usage: scaling_sim [flags] TRACE.json|DIR...\n");
    return 2;
  }
  std::vector<SimulatedWorkflow> workflows;
  for (const std::string& file : files) {
    absl::StatusOr<gyre::wfcommons::Trace> trace = gyre::wfcommons::ReadTraceFile(file);
    if (!trace.ok()) {
      std::fprintf(stderr, "%s: %s\n", file.c_str(), std::string(trace.status().message()).c_str());
      return 1;
    }
    workflows.push_back(gyre::scheduler::SimulatedWorkflowFromTrace(*trace));
  }
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::exponential_distribution<double> gap(1.0 / absl::GetFlag(FLAGS_arrival_gap));
  std::vector<double> arrivals;
  double at = 0;
  for (size_t i = 0; i < workflows.size(); ++i) {
    arrivals.push_back(std::floor(at));
    at += gap(rng);
  }
  std::printf(
      "%zu workflows, mean arrival gap %.0f s, %d slots/worker, start-up %.0f s, "
      "control period %.0f s, max %d workers\n",
      workflows.size(), absl::GetFlag(FLAGS_arrival_gap), absl::GetFlag(FLAGS_slots_per_worker),
      absl::GetFlag(FLAGS_startup_delay), absl::GetFlag(FLAGS_control_period),
      absl::GetFlag(FLAGS_max_workers));
  std::printf("%-10s %12s %16s %8s\n", "policy", "makespan_s", "worker_seconds", "peak");
  Outcome reactive;
  for (bool forecast : {false, true}) {
    const Outcome o = ScalingRun(workflows, arrivals, forecast).Run();
    if (!forecast) reactive = o;
    std::printf("%-10s %12.0f %16.0f %8.0f", forecast ? "forecast" : "reactive", o.makespan,
                o.worker_seconds, o.peak_workers);
    if (forecast) {
      std::printf("   (vs reactive: makespan %+.1f%%, worker-seconds %+.1f%%)",
                  100 * (o.makespan / reactive.makespan - 1),
                  100 * (o.worker_seconds / reactive.worker_seconds - 1));
    }
    std::printf("\n");
  }
  return 0;
}
