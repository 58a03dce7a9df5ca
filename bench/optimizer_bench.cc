// gyre-optimizer analysis speed (issue 25): AnalyzeWorkflow's domain call
// (critical path, profile, every what-if simulation behind the
// recommendations) on a generated 10,000-task DAG and on the largest
// development trace. Prints median and p99 beside the targets, with one
// bare list-scheduling simulation of the same DAG as the reference measured
// in the same run (an analysis is about a dozen of them). The verdict is on
// the thread's CPU time: wall time on this shared 2-core machine mostly
// measures the other processes (both are printed).
//
//   optimizer_bench [--runs=50]
//       [--trace=tests/data/wfcommons/pegasus/montage/montage-chameleon-2mass-01d-001.json]
// (any WfCommons trace; bench/README.md's figures used the development set's
// largest Montage trace, which is not shipped with the repository)
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/wfcommons/wfcommons_trace.h"
#include "services/optimizer/workflow_analysis.h"

ABSL_FLAG(int, runs, 50, "timed analyses per case");
ABSL_FLAG(std::string, trace, "", "a WfCommons trace (the largest development one: 2,122 tasks)");

namespace gyre::optimizer {
namespace {

// 100 layers of 100 tasks; each task depends on 1 to 3 tasks of the layer
// before; durations 1-100 s; two pools with a max (cpu 32, gpu 8; every
// fifth task is gpu), so pool and priority what-ifs run too.
AnalysisInput GeneratedDag(int layers, int width) {
  std::mt19937 rng(25);
  std::uniform_int_distribution<int> parents(1, 3), pick(0, width - 1);
  std::uniform_real_distribution<double> seconds(1, 100);
  AnalysisInput input;
  input.definition.set_name("generated");
  for (int l = 0; l < layers; ++l) {
    for (int i = 0; i < width; ++i) {
      auto* task = input.definition.add_tasks();
      task->set_id(absl::StrCat("t", l, "_", i));
      task->set_queue(i % 5 == 0 ? "gpu" : "cpu");
      if (l > 0) {
        const int n = parents(rng);
        std::vector<int> chosen;
        for (int p = 0; p < n; ++p) {
          int parent = pick(rng);
          if (std::find(chosen.begin(), chosen.end(), parent) != chosen.end()) continue;
          chosen.push_back(parent);
          task->add_depends_on(absl::StrCat("t", l - 1, "_", parent));
        }
      }
      input.recorded_seconds[task->id()] = seconds(rng);
    }
  }
  input.pool_max = {{"cpu", 32}, {"gpu", 8}};
  return input;
}

AnalysisInput FromTrace(const wfcommons::Trace& trace) {
  AnalysisInput input;
  input.definition.set_name(trace.name);
  for (const auto& t : trace.tasks) {
    auto* task = input.definition.add_tasks();
    task->set_id(t.id);
    task->set_queue(t.type);  // one pool per program, as a Pegasus site would run them
    for (int p : t.parents) task->add_depends_on(trace.tasks[p].id);
    input.recorded_seconds[t.id] = t.runtime_seconds;
  }
  return input;
}

struct Figures {
  double median_ms;
  double p99_ms;
  double cpu_median_ms;  // the thread's CPU time: what the analysis costs on a loaded machine
  double cpu_p99_ms;
};

double ThreadCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

template <typename F>
Figures Time(int runs, F&& f) {
  std::vector<double> ms, cpu;
  for (int i = 0; i < runs; ++i) {
    const absl::Time start = absl::Now();
    const double cpu_start = ThreadCpuMs();
    f();
    cpu.push_back(ThreadCpuMs() - cpu_start);
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  const size_t p99 = std::min(ms.size() - 1, static_cast<size_t>(ms.size() * 0.99));
  return {ms[ms.size() / 2], ms[p99], cpu[cpu.size() / 2], cpu[p99]};
}

void Report(const char* name, const AnalysisInput& input, double target_ms, int runs) {
  auto analysis = AnalyzeWorkflow(input);
  if (!analysis.ok()) {
    std::printf("%s: %s\n", name, std::string(analysis.status().message()).c_str());
    return;
  }
  // The reference: one bare simulation of the same DAG (BuildDag's work not included).
  SimGraph graph;
  {
    absl::flat_hash_map<std::string, int> index;
    std::vector<std::string> queues;
    const auto& def = input.definition;
    const int n = def.tasks_size();
    for (int i = 0; i < n; ++i) index[def.tasks(i).id()] = i;
    graph.duration.resize(n);
    graph.queue.assign(n, 0);
    graph.priority.assign(n, 50);
    graph.children.resize(n);
    graph.parent_count.assign(n, 0);
    graph.caps = {0};
    for (int i = 0; i < n; ++i) {
      graph.duration[i] = input.recorded_seconds.at(def.tasks(i).id());
      for (const auto& dep : def.tasks(i).depends_on()) {
        graph.children[index[dep]].push_back(i);
        ++graph.parent_count[i];
      }
    }
  }
  const Figures sim = Time(runs, [&] { Simulate(graph); });
  const Figures full = Time(runs, [&] { (void)AnalyzeWorkflow(input); });
  std::printf(
      "%s: %d tasks, %zu findings, %zu recommendations; critical path %.0f s (%.1f%% of the "
      "work), makespan %.0f s under the pools, %.0f s optimized\n",
      name, input.definition.tasks_size(), analysis->findings.size(),
      analysis->recommendations.size(), analysis->critical_path_seconds,
      analysis->critical_path_share * 100, analysis->makespan_seconds,
      analysis->optimized_makespan_seconds);
  // The target is on the p99: wall time, and the thread's CPU time beside
  // it (on a loaded machine the wall p99 is mostly waiting for a core).
  std::printf(
      "  analysis:       median %7.2f ms, p99 %7.2f ms, CPU median %7.2f ms, CPU p99 %7.2f ms   "
      "target p99 < %.0f ms: %s\n",
      full.median_ms, full.p99_ms, full.cpu_median_ms, full.cpu_p99_ms, target_ms,
      full.p99_ms < target_ms       ? "met (wall)"
      : full.cpu_p99_ms < target_ms ? "met in CPU, MISSED in wall time (machine load)"
                                    : "MISSED");
  std::printf(
      "  one simulation: median %7.2f ms, p99 %7.2f ms, CPU median %7.2f ms   (reference, same "
      "run)\n",
      sim.median_ms, sim.p99_ms, sim.cpu_median_ms);
}

}  // namespace
}  // namespace gyre::optimizer

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  gyre::optimizer::Report("generated 100x100 DAG", gyre::optimizer::GeneratedDag(100, 100), 50,
                          runs);
  const std::string trace_path = absl::GetFlag(FLAGS_trace);
  if (!trace_path.empty()) {
    auto trace = gyre::wfcommons::ReadTraceFile(trace_path);
    if (!trace.ok()) {
      std::fprintf(stderr, "%s\n", std::string(trace.status().message()).c_str());
      return 1;
    }
    gyre::optimizer::Report(trace->name.c_str(), gyre::optimizer::FromTrace(*trace), 10, runs);
  }
  return 0;
}
