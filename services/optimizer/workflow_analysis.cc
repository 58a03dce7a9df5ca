#include "services/optimizer/workflow_analysis.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace gyre::optimizer {
namespace {

// The engine's default when a task names no priority (an execution's default).
constexpr int kDefaultPriority = 50;
// Below this a what-if is noise, not a recommendation.
constexpr double kMinImprovement = 0.01;
// A timeout this many times the p99 is "far above".
constexpr double kTimeoutFarAbove = 10;
// Runs needed before a timeout is called too generous.
constexpr size_t kMinRunsForTimeout = 3;
constexpr int kMaxFanInFindings = 10;
// Declared memory this many times the peak RSS is "far above"; proposals are
// this many times the peak, rounded up to a MiB.
constexpr double kMemoryFarAbove = 4;
constexpr double kMemoryHeadroom = 1.5;
constexpr int64_t kMiB = 1 << 20;

double DurationSeconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + d.nanos() / 1e9;
}

std::string Secs(double s) {
  if (s >= 100) return absl::StrFormat("%.0f s", s);
  if (s >= 1) return absl::StrFormat("%.1f s", s);
  return absl::StrFormat("%.3f s", s);
}

std::string Change(double before, double after) {
  double pct = before > 0 ? (after - before) / before * 100 : 0;
  return absl::StrFormat("predicted makespan %+.0f%% (%s -> %s)", pct, Secs(before), Secs(after));
}

// The DAG by index, with everything the analysis derives from it once.
struct Dag {
  std::vector<std::string> ids;
  std::vector<std::string> queues;  // by queue index
  SimGraph graph;
  std::vector<std::vector<int>> parents;
  std::vector<int> topo;  // parents before children
};

std::vector<int> TopoOrder(const SimGraph& g) {
  const int n = static_cast<int>(g.duration.size());
  std::vector<int> remaining = g.parent_count;
  std::vector<int> order;
  order.reserve(n);
  for (int i = 0; i < n; ++i) {
    if (remaining[i] == 0) order.push_back(i);
  }
  for (size_t head = 0; head < order.size(); ++head) {
    for (int c : g.children[order[head]]) {
      if (--remaining[c] == 0) order.push_back(c);
    }
  }
  return order;
}

// Upward rank: the longest path from each task to the end, its own duration included.
std::vector<double> UpwardRank(const SimGraph& g, const std::vector<int>& topo) {
  std::vector<double> rank(g.duration.size(), 0);
  for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
    double best = 0;
    for (int c : g.children[*it]) best = std::max(best, rank[c]);
    rank[*it] = g.duration[*it] + best;
  }
  return rank;
}

absl::StatusOr<Dag> BuildDag(const AnalysisInput& input, Analysis* analysis) {
  const auto& def = input.definition;
  Dag dag;
  const int n = def.tasks_size();
  // Keys view the definition's strings (it outlives this call): no copy
  // of 10,000 ids.
  absl::flat_hash_map<absl::string_view, int> index;
  absl::flat_hash_map<absl::string_view, int> queue_index;
  index.reserve(n);
  dag.ids.reserve(n);
  SimGraph& g = dag.graph;
  g.duration.resize(n);
  g.queue.resize(n);
  g.priority.resize(n);
  g.children.resize(n);
  g.parent_count.assign(n, 0);
  dag.parents.resize(n);
  const std::string default_queue = def.default_queue().empty() ? "default" : def.default_queue();
  for (int i = 0; i < n; ++i) {
    const auto& task = def.tasks(i);
    dag.ids.push_back(task.id());
    if (!index.emplace(task.id(), i).second) {
      return absl::InvalidArgumentError(absl::StrCat("task \"", task.id(), "\" is defined twice"));
    }
    const std::string& queue = task.queue().empty() ? default_queue : task.queue();
    auto [qit, added] = queue_index.emplace(queue, static_cast<int>(dag.queues.size()));
    if (added) dag.queues.push_back(queue);
    g.queue[i] = qit->second;
    g.priority[i] = task.priority() > 0 ? task.priority() : kDefaultPriority;
    DurationSource source = DurationSource::kDefault;
    double seconds = input.default_seconds;
    if (auto it = input.actual_seconds.find(task.id()); it != input.actual_seconds.end()) {
      source = DurationSource::kActual;
      seconds = it->second;
    } else if (auto rec = input.recorded_seconds.find(task.id());
               rec != input.recorded_seconds.end()) {
      source = DurationSource::kRecorded;
      seconds = rec->second;
    } else if (auto predicted = input.predicted_seconds.find(task.id());
               predicted != input.predicted_seconds.end()) {
      source = DurationSource::kPredicted;
      seconds = predicted->second;
    } else if (task.builtin().kind() == gyre::v1::BuiltinExecutor::SLEEP) {
      source = DurationSource::kSleep;
      seconds = DurationSeconds(task.builtin().duration());
    } else if (task.builtin().kind() == gyre::v1::BuiltinExecutor::NOOP) {
      source = DurationSource::kSleep;
      seconds = 0;
    }
    if (!(seconds >= 0) || !std::isfinite(seconds)) {
      return absl::InvalidArgumentError(absl::StrCat("task \"", task.id(), "\": duration ", seconds,
                                                     " s from ", DurationSourceName(source),
                                                     " is not a finite number >= 0"));
    }
    g.duration[i] = seconds;
    ++analysis->duration_sources[static_cast<int>(source)];
  }
  for (int i = 0; i < n; ++i) {
    for (const auto& dep : def.tasks(i).depends_on()) {
      auto it = index.find(dep);
      if (it == index.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("task \"", dag.ids[i], "\": unknown dependency \"", dep, "\""));
      }
      g.children[it->second].push_back(i);
      dag.parents[i].push_back(it->second);
      ++g.parent_count[i];
    }
  }
  g.caps.assign(dag.queues.size(), 0);
  for (size_t q = 0; q < dag.queues.size(); ++q) {
    if (auto it = input.pool_max.find(dag.queues[q]); it != input.pool_max.end()) {
      if (it->second < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("pool \"", dag.queues[q], "\": max ", it->second, " is below 1"));
      }
      g.caps[q] = it->second;
    }
  }
  dag.topo = TopoOrder(g);
  if (static_cast<int>(dag.topo.size()) != n) {
    return absl::InvalidArgumentError("the workflow's dependencies form a cycle");
  }
  return dag;
}

std::vector<std::string> Names(const Dag& dag, const std::vector<int>& tasks) {
  std::vector<std::string> names;
  names.reserve(tasks.size());
  for (int t : tasks) names.push_back(dag.ids[t]);
  return names;
}

// A recommendation measured from history, not by a simulation: the
// makespan stays `makespan` (what it saves is in saved_seconds).
Recommendation HistoryRecommendation(absl::string_view id_prefix, RecommendationKind kind,
                                     const std::string& task_id, double makespan) {
  Recommendation rec;
  rec.id = absl::StrCat(id_prefix, task_id);
  rec.kind = kind;
  rec.task_ids = {task_id};
  rec.makespan_before = rec.makespan_after = makespan;
  return rec;
}

std::string ShortList(const std::vector<std::string>& names) {
  if (names.size() <= 4) return absl::StrJoin(names, " -> ");
  return absl::StrCat(names.front(), " -> ", names[1], " -> ... -> ", names.back(), " (",
                      names.size(), " tasks)");
}

// Tasks every source-to-sink path crosses: in a topological order, no edge
// jumps over its position, no sink lies before it and no source after it.
// (If every path crosses v, every task is v's ancestor or descendant and no
// edge links the two sides, so this holds in any topological order.)
// Returns each with its number of descendants (every later task).
std::vector<std::pair<int, int>> CutTasks(const Dag& dag) {
  const SimGraph& g = dag.graph;
  const int n = static_cast<int>(dag.topo.size());
  std::vector<int> pos(n);
  for (int p = 0; p < n; ++p) pos[dag.topo[p]] = p;
  std::vector<int> crossing(n + 1, 0);
  int last_source = 0;
  int first_sink = n;
  for (int v = 0; v < n; ++v) {
    if (g.parent_count[v] == 0) last_source = std::max(last_source, pos[v]);
    if (g.children[v].empty()) first_sink = std::min(first_sink, pos[v]);
    for (int c : g.children[v]) {
      if (pos[v] + 1 < pos[c]) {
        ++crossing[pos[v] + 1];
        --crossing[pos[c]];
      }
    }
  }
  std::vector<std::pair<int, int>> cuts;
  int spanning = 0;
  for (int p = 0; p < n; ++p) {
    spanning += crossing[p];
    if (spanning == 0 && p >= last_source && p <= first_sink)
      cuts.push_back({dag.topo[p], n - 1 - p});
  }
  return cuts;
}

// When the first and the last of task `v`'s dependencies end in `sim`, and
// which is last.
struct ParentEnds {
  double first = 1e300;
  double last = 0;
  int slowest = -1;
};
ParentEnds EndsOfParents(const Dag& dag, const SimResult& sim, int v) {
  ParentEnds ends;
  ends.slowest = dag.parents[v][0];
  for (int p : dag.parents[v]) {
    const double end = sim.start_seconds[p] + dag.graph.duration[p];
    ends.first = std::min(ends.first, end);
    if (end >= ends.last) {
      ends.last = end;
      ends.slowest = p;
    }
  }
  return ends;
}

double MeanWidth(const SimResult& sim, double from, double to) {
  if (to <= from) return 0;
  double area = 0;
  for (size_t i = 0; i < sim.steps.size(); ++i) {
    double a = std::max(from, sim.steps[i].start_seconds);
    double b = std::min(
        to, i + 1 < sim.steps.size() ? sim.steps[i + 1].start_seconds : sim.makespan_seconds);
    if (b > a) area += (b - a) * sim.steps[i].width;
  }
  return area / (to - from);
}

}  // namespace

namespace {

// The names of an enum's values, in declaration order: one table per enum
// (these were three switches of the same shape); `fallback` for a value
// past the table.
template <typename Enum, size_t N>
const char* NameIn(const char* const (&names)[N], Enum value, const char* fallback) {
  const auto index = static_cast<size_t>(value);
  return index < N ? names[index] : fallback;
}

constexpr const char* kDurationSourceNames[] = {"actual", "recorded", "predicted", "builtin",
                                                "default"};
constexpr const char* kFindingKindNames[] = {
    "fan-in",           "serial-chain",   "pool-cap",     "timeout-too-low",
    "timeout-too-high", "futile-retries", "memory-misfit"};
constexpr const char* kRecommendationKindNames[] = {
    "prioritize-critical-path", "raise-pool-max", "set-timeout", "reduce-retries",
    "run-in-parallel",          "split-task",     "set-memory"};
static_assert(std::size(kDurationSourceNames) == static_cast<size_t>(DurationSource::kDefault) + 1);
static_assert(std::size(kFindingKindNames) == static_cast<size_t>(FindingKind::kMemoryMisfit) + 1);
static_assert(std::size(kRecommendationKindNames) ==
              static_cast<size_t>(RecommendationKind::kSetMemory) + 1);

}  // namespace

const char* DurationSourceName(DurationSource source) {
  return NameIn(kDurationSourceNames, source, "default");
}

const char* FindingKindName(FindingKind kind) { return NameIn(kFindingKindNames, kind, ""); }

const char* RecommendationKindName(RecommendationKind kind) {
  return NameIn(kRecommendationKindNames, kind, "");
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(values.size())));
  rank = std::clamp<size_t>(rank, 1, values.size());
  std::nth_element(values.begin(), values.begin() + (rank - 1), values.end());
  return values[rank - 1];
}

namespace {

// The ready tasks of one queue: one FIFO per priority level (0..100) and a
// bitmask of the non-empty levels. Tasks become ready in time order, so a
// FIFO per level is the engine's order (priority, then first ready) at O(1)
// per push and pop.
class LevelQueue {
 public:
  bool empty() const { return mask_[0] == 0 && mask_[1] == 0; }
  void Push(int priority, int task, double ready) {
    const int level = std::clamp(priority, 0, 100);
    levels_[level].push_back({task, ready});
    mask_[level >> 6] |= uint64_t{1} << (level & 63);
  }
  // The next task and when it became ready.
  std::pair<int, double> Pop() {
    const int level =
        mask_[1] != 0 ? 64 + 63 - __builtin_clzll(mask_[1]) : 63 - __builtin_clzll(mask_[0]);
    auto& fifo = levels_[level];
    std::pair<int, double> next = fifo[heads_[level]++];
    if (heads_[level] == fifo.size()) {
      fifo.clear();
      heads_[level] = 0;
      mask_[level >> 6] &= ~(uint64_t{1} << (level & 63));
    }
    return next;
  }

 private:
  std::vector<std::pair<int, double>> levels_[101];
  size_t heads_[101] = {};
  uint64_t mask_[2] = {0, 0};
};

}  // namespace

namespace {

// A SimGraph's parts by pointer: a what-if replaces the one or two it
// changes and shares the rest (copying the whole graph, 10,000 children
// lists for the 10,000-task bench, cost about as much as simulating it).
struct SimParts {
  const std::vector<double>* duration;
  const std::vector<int>* queue;
  const std::vector<int>* priority;
  const std::vector<std::vector<int>>* children;
  const std::vector<int>* parent_count;
  const std::vector<int>* caps;
};

SimParts PartsOf(const SimGraph& g) {
  return {&g.duration, &g.queue, &g.priority, &g.children, &g.parent_count, &g.caps};
}

SimResult SimulateParts(const SimParts& parts);

// The makespan of `g` with the caps, priorities or durations given instead
// of its own (null: its own).
double WhatIfMakespan(const SimGraph& g, const std::vector<int>* caps,
                      const std::vector<int>* priority = nullptr,
                      const std::vector<double>* duration = nullptr) {
  SimParts parts = PartsOf(g);
  if (caps != nullptr) parts.caps = caps;
  if (priority != nullptr) parts.priority = priority;
  if (duration != nullptr) parts.duration = duration;
  return SimulateParts(parts).makespan_seconds;
}

}  // namespace

SimResult Simulate(const SimGraph& g) { return SimulateParts(PartsOf(g)); }

namespace {

SimResult SimulateParts(const SimParts& parts) {
  const std::vector<double>& duration = *parts.duration;
  const std::vector<int>& queue_of = *parts.queue;
  const std::vector<int>& priority = *parts.priority;
  const std::vector<std::vector<int>>& children = *parts.children;
  const std::vector<int>& caps = *parts.caps;
  using Running = std::pair<double, int>;  // finish time, task
  const int n = static_cast<int>(duration.size());
  const size_t queues = caps.size();
  SimResult r;
  r.start_seconds.assign(n, 0);
  r.peak_per_queue.assign(queues, 0);
  r.wait_per_queue.assign(queues, 0);
  std::vector<LevelQueue> ready(queues);
  std::vector<int> running_in(queues, 0);
  std::vector<int> remaining = *parts.parent_count;
  std::vector<Running> running_storage;
  running_storage.reserve(1024);
  std::priority_queue<Running, std::vector<Running>, std::greater<>> running(
      std::greater<>(), std::move(running_storage));
  std::vector<int> dirty;  // queues with newly ready tasks or freed slots
  std::vector<char> is_dirty(queues, 0);
  auto mark = [&](int q) {
    if (!is_dirty[q]) {
      is_dirty[q] = 1;
      dirty.push_back(q);
    }
  };
  for (int i = 0; i < n; ++i) {
    if (remaining[i] == 0) {
      ready[queue_of[i]].Push(priority[i], i, 0);
      mark(queue_of[i]);
    }
  }
  double now = 0;
  int width = 0;
  while (true) {
    for (int q : dirty) {
      is_dirty[q] = 0;
      const int cap = caps[q];
      auto& rq = ready[q];
      while (!rq.empty() && (cap == 0 || running_in[q] < cap)) {
        auto [task, ready_time] = rq.Pop();
        r.start_seconds[task] = now;
        r.wait_per_queue[q] += now - ready_time;
        running.push({now + duration[task], task});
        ++running_in[q];
        ++width;
      }
      r.peak_per_queue[q] = std::max(r.peak_per_queue[q], running_in[q]);
    }
    dirty.clear();
    r.peak_width = std::max(r.peak_width, width);
    if (!r.steps.empty() && r.steps.back().start_seconds == now) {
      r.steps.back().width = width;
    } else if (r.steps.empty() || r.steps.back().width != width) {
      r.steps.push_back({now, static_cast<double>(width)});
    }
    if (running.empty()) break;
    now = running.top().first;
    while (!running.empty() && running.top().first == now) {
      int done = running.top().second;
      running.pop();
      --width;
      --running_in[queue_of[done]];
      mark(queue_of[done]);
      for (int c : children[done]) {
        if (--remaining[c] == 0) {
          ready[queue_of[c]].Push(priority[c], c, now);
          mark(queue_of[c]);
        }
      }
    }
  }
  r.makespan_seconds = now;
  return r;
}

}  // namespace

std::vector<ProfileStep> Bucketize(const std::vector<ProfileStep>& steps, double makespan,
                                   int buckets) {
  if (static_cast<int>(steps.size()) <= buckets || makespan <= 0) return steps;
  std::vector<ProfileStep> out(buckets);
  const double size = makespan / buckets;
  for (int b = 0; b < buckets; ++b) out[b].start_seconds = b * size;
  for (size_t i = 0; i < steps.size(); ++i) {
    double a = steps[i].start_seconds;
    double end = i + 1 < steps.size() ? steps[i + 1].start_seconds : makespan;
    while (a < end) {
      int b = std::min(buckets - 1, static_cast<int>(a / size));
      double bucket_end = b == buckets - 1 ? end : std::min(end, (b + 1) * size);
      if (bucket_end <= a) bucket_end = end;  // rounding at a bucket edge
      out[b].width += (bucket_end - a) * steps[i].width / size;
      a = bucket_end;
    }
  }
  return out;
}

absl::StatusOr<Analysis> AnalyzeWorkflow(const AnalysisInput& input) {
  Analysis out;
  auto built = BuildDag(input, &out);
  if (!built.ok()) return built.status();
  const Dag& dag = *built;
  const SimGraph& g = dag.graph;
  const int n = static_cast<int>(g.duration.size());
  if (n == 0) return out;

  // Critical path: from the source with the highest upward rank, always to
  // the child with the highest rank.
  std::vector<double> rank = UpwardRank(g, dag.topo);
  int head = -1;
  for (int i = 0; i < n; ++i) {
    out.total_work_seconds += g.duration[i];
    if (g.parent_count[i] == 0 && (head < 0 || rank[i] > rank[head])) head = i;
  }
  std::vector<int> path;
  for (int v = head; v >= 0;) {
    path.push_back(v);
    int next = -1;
    for (int c : g.children[v]) {
      if (next < 0 || rank[c] > rank[next]) next = c;
    }
    v = next;
  }
  out.critical_path = Names(dag, path);
  out.critical_path_seconds = rank[head];
  out.critical_path_share =
      out.total_work_seconds > 0 ? out.critical_path_seconds / out.total_work_seconds : 1;

  SimResult base = Simulate(g);
  out.makespan_seconds = base.makespan_seconds;
  out.peak_width = base.peak_width;
  out.profile = Bucketize(base.steps, base.makespan_seconds, kProfileBuckets);
  const std::vector<int> no_caps(g.caps.size(), 0);
  SimParts unlimited_parts = PartsOf(g);
  unlimited_parts.caps = &no_caps;
  SimResult unlimited = SimulateParts(unlimited_parts);
  out.unlimited_makespan_seconds = unlimited.makespan_seconds;
  const double before = base.makespan_seconds;
  // Every definition and pool change together.
  std::vector<int> optimized_caps = g.caps;
  std::vector<int> optimized_priority = g.priority;

  // Pools whose max caps the width: measured with the max raised to what the
  // workflow would use unlimited (at most twice the max).
  for (size_t q = 0; q < dag.queues.size(); ++q) {
    const int cap = g.caps[q];
    if (cap == 0 || base.wait_per_queue[q] <= 0 || unlimited.peak_per_queue[q] <= cap) continue;
    const int raised = std::min(2 * cap, unlimited.peak_per_queue[q]);
    std::vector<int> caps = g.caps;
    caps[q] = raised;
    const double after = WhatIfMakespan(g, &caps);
    Finding f{FindingKind::kPoolCap,
              {},
              dag.queues[q],
              base.wait_per_queue[q],
              absl::StrFormat("pool %s max %d caps the width: its tasks waited %s in all for a "
                              "slot; unlimited, %d of them would run at once",
                              dag.queues[q], cap, Secs(base.wait_per_queue[q]),
                              unlimited.peak_per_queue[q])};
    out.findings.push_back(std::move(f));
    if (after < before * (1 - kMinImprovement)) {
      Recommendation rec;
      rec.id = absl::StrCat("pool-", dag.queues[q], "-max-", raised);
      rec.kind = RecommendationKind::kRaisePoolMax;
      rec.queue = dag.queues[q];
      rec.makespan_before = before;
      rec.makespan_after = after;
      rec.configuration_only = true;
      rec.new_pool_max = raised;
      rec.description = absl::StrFormat("raise pool %s max from %d to %d: %s", dag.queues[q], cap,
                                        raised, Change(before, after));
      out.recommendations.push_back(std::move(rec));
      optimized_caps[q] = raised;
    }
  }

  // Priorities along the critical path: only matter where tasks wait for slots.
  bool contended = false;
  int max_priority = 0;
  for (size_t q = 0; q < dag.queues.size(); ++q) contended |= base.wait_per_queue[q] > 0;
  for (int p : g.priority) max_priority = std::max(max_priority, p);
  if (contended) {
    const int raised = std::min(100, max_priority + 10);
    std::vector<int> priority = g.priority;
    std::vector<int> changed;
    for (int v : path) {
      if (priority[v] < raised) {
        priority[v] = raised;
        changed.push_back(v);
      }
    }
    const double after = changed.empty() ? before : WhatIfMakespan(g, /*caps=*/nullptr, &priority);
    if (after < before * (1 - kMinImprovement)) {
      Recommendation rec;
      rec.id = "prioritize-critical-path";
      rec.kind = RecommendationKind::kPrioritizeCriticalPath;
      rec.task_ids = Names(dag, changed);
      rec.makespan_before = before;
      rec.makespan_after = after;
      rec.new_priority = raised;
      rec.description = absl::StrFormat("give the %d critical-path tasks priority %d: %s",
                                        changed.size(), raised, Change(before, after));
      out.recommendations.push_back(std::move(rec));
      for (int v : changed) optimized_priority[v] = raised;
    }
  }

  // Fan-ins every path crosses, worst (longest wait for its last parent plus
  // its own duration) first.
  {
    std::vector<std::pair<double, int>> fan_ins;
    std::vector<int> dependants(n, 0);
    for (auto [v, after] : CutTasks(dag)) {
      dependants[v] = after;
      if (dag.parents[v].size() < 2) continue;
      const ParentEnds ends = EndsOfParents(dag, base, v);
      fan_ins.push_back({(ends.last - ends.first) + g.duration[v], v});
    }
    std::sort(fan_ins.begin(), fan_ins.end(), std::greater<>());
    int what_ifs = 0;
    for (size_t i = 0; i < fan_ins.size() && i < kMaxFanInFindings; ++i) {
      const int v = fan_ins[i].second;
      const auto [first, last, slowest] = EndsOfParents(dag, base, v);
      out.findings.push_back(
          {FindingKind::kFanIn,
           {dag.ids[v]},
           "",
           g.duration[v],
           absl::StrFormat("every path crosses %s: it waits for all %d of its dependencies "
                           "(the first done at %s, the last, %s, at %s) and runs %s alone at "
                           "that point",
                           dag.ids[v], dag.parents[v].size(), Secs(first), dag.ids[slowest],
                           Secs(last), Secs(g.duration[v]))});
      out.findings.back().dependants = dependants[v];
      if (what_ifs < kMaxFanInWhatIfs && g.duration[v] > 0) {
        ++what_ifs;
        std::vector<double> duration = g.duration;
        duration[v] /= 2;
        const double after = WhatIfMakespan(g, /*caps=*/nullptr, /*priority=*/nullptr, &duration);
        if (after < before * (1 - kMinImprovement)) {
          Recommendation rec;
          rec.id = absl::StrCat("split-", dag.ids[v]);
          rec.kind = RecommendationKind::kSplitTask;
          rec.task_ids = {dag.ids[v]};
          rec.makespan_before = before;
          rec.makespan_after = after;
          rec.changes_semantics = true;
          rec.description = absl::StrFormat(
              "split %s (%s, every path crosses it) into two halves that run side by side: %s",
              dag.ids[v], Secs(g.duration[v]), Change(before, after));
          out.recommendations.push_back(std::move(rec));
        }
      }
    }
  }

  // Serial chains on the critical path that run alone: links where a task is
  // its predecessor's only child and has no other dependency. The what-if
  // drops the middle link, the second half keeping the chain's own
  // dependencies, so the halves run side by side.
  {
    std::vector<std::vector<int>> chains;
    for (size_t i = 0; i < path.size();) {
      size_t j = i;
      while (j + 1 < path.size() && g.children[path[j]].size() == 1 &&
             g.parent_count[path[j + 1]] == 1) {
        ++j;
      }
      if (j > i) chains.emplace_back(path.begin() + i, path.begin() + j + 1);
      i = j + 1;
    }
    std::vector<std::pair<double, int>> by_length;
    for (size_t c = 0; c < chains.size(); ++c) {
      double total = 0;
      for (int v : chains[c]) total += g.duration[v];
      by_length.push_back({total, static_cast<int>(c)});
    }
    std::sort(by_length.begin(), by_length.end(), std::greater<>());
    for (size_t k = 0; k < by_length.size() && k < kMaxChainWhatIfs; ++k) {
      const auto& chain = chains[by_length[k].second];
      const double from = base.start_seconds[chain.front()];
      const double to = base.start_seconds[chain.back()] + g.duration[chain.back()];
      const double width = MeanWidth(base, from, to);
      if (by_length[k].first <= 0 || width >= 1.5) continue;
      const int mid = chain[chain.size() / 2];
      const int before_mid = chain[chain.size() / 2 - 1];
      std::vector<std::string> names = Names(dag, chain);
      out.findings.push_back(
          {FindingKind::kSerialChain, names, "", by_length[k].first,
           absl::StrFormat("the chain %s (%s, %.0f%% of the makespan) runs "
                           "alone: mean width %.2f while it runs",
                           ShortList(names), Secs(by_length[k].first),
                           before > 0 ? by_length[k].first / before * 100 : 0, width)});
      // Only the edges change: the children lists are copied, nothing else.
      std::vector<std::vector<int>> children = g.children;
      std::vector<int> parent_count = g.parent_count;
      auto& kids = children[before_mid];
      kids.erase(std::find(kids.begin(), kids.end(), mid));
      --parent_count[mid];
      for (int p : dag.parents[chain.front()]) {
        children[p].push_back(mid);
        ++parent_count[mid];
      }
      SimParts parts = PartsOf(g);
      parts.children = &children;
      parts.parent_count = &parent_count;
      const double after = SimulateParts(parts).makespan_seconds;
      if (after < before * (1 - kMinImprovement)) {
        Recommendation rec;
        rec.id = absl::StrCat("parallel-", dag.ids[mid], "-", dag.ids[before_mid]);
        rec.kind = RecommendationKind::kRunInParallel;
        rec.task_ids = {dag.ids[mid]};
        rec.dependency = dag.ids[before_mid];
        rec.makespan_before = before;
        rec.makespan_after = after;
        rec.changes_semantics = true;
        rec.description = absl::StrFormat(
            "if %s does not need %s's results, let it run beside it (depend on what %s depends "
            "on): %s",
            dag.ids[mid], dag.ids[before_mid], dag.ids[chain.front()], Change(before, after));
        out.recommendations.push_back(std::move(rec));
      }
    }
  }

  // Timeouts and retries against history.
  for (int i = 0; i < n; ++i) {
    auto it = input.history.find(dag.ids[i]);
    if (it == input.history.end()) continue;
    const TaskHistory& h = it->second;
    const auto& spec = input.definition.tasks(i);
    if (!h.run_seconds.empty()) {
      const double p99 = Percentile(h.run_seconds, 0.99);
      const double timeout = DurationSeconds(spec.timeout());
      if (timeout > 0 && timeout < p99) {
        const double proposed = std::ceil(2 * p99);
        out.findings.push_back(
            {FindingKind::kTimeoutTooLow,
             {dag.ids[i]},
             "",
             timeout,
             absl::StrFormat("%s's timeout %s is below its p99 %s over %d runs: its slow runs "
                             "are killed",
                             dag.ids[i], Secs(timeout), Secs(p99), h.run_seconds.size())});
        Recommendation rec =
            HistoryRecommendation("timeout-", RecommendationKind::kSetTimeout, dag.ids[i], before);
        rec.new_timeout_seconds = proposed;
        rec.description = absl::StrFormat(
            "raise %s's timeout from %s to %s (2 x p99): runs up to its p99 are no longer "
            "killed",
            dag.ids[i], Secs(timeout), Secs(proposed));
        out.recommendations.push_back(std::move(rec));
      } else if (timeout > kTimeoutFarAbove * p99 && h.run_seconds.size() >= kMinRunsForTimeout &&
                 timeout - p99 > 60) {
        const double proposed = std::max(std::ceil(3 * p99), 10.0);
        out.findings.push_back(
            {FindingKind::kTimeoutTooHigh,
             {dag.ids[i]},
             "",
             timeout,
             absl::StrFormat("%s's timeout %s is %.0f x its p99 %s over %d runs: a hung run "
                             "holds its slot that long",
                             dag.ids[i], Secs(timeout), timeout / std::max(p99, 1e-9), Secs(p99),
                             h.run_seconds.size())});
        Recommendation rec =
            HistoryRecommendation("timeout-", RecommendationKind::kSetTimeout, dag.ids[i], before);
        rec.new_timeout_seconds = proposed;
        rec.saved_seconds = timeout - proposed;
        rec.description = absl::StrFormat(
            "lower %s's timeout from %s to %s (3 x p99): a hung run is caught %s sooner",
            dag.ids[i], Secs(timeout), Secs(proposed), Secs(timeout - proposed));
        out.recommendations.push_back(std::move(rec));
      }
    }
    const int64_t declared = spec.resources().memory_bytes();
    if (h.peak_rss_bytes > 0 && declared > 0) {
      const int64_t proposed =
          (static_cast<int64_t>(static_cast<double>(h.peak_rss_bytes) * kMemoryHeadroom) + kMiB -
           1) /
          kMiB * kMiB;
      const bool below = declared < h.peak_rss_bytes;
      const bool far_above = declared > kMemoryFarAbove * static_cast<double>(h.peak_rss_bytes) &&
                             declared - proposed >= 64 * kMiB;
      if (below || far_above) {
        const double mib = static_cast<double>(kMiB);
        out.findings.push_back(
            {FindingKind::kMemoryMisfit,
             {dag.ids[i]},
             "",
             0,
             absl::StrFormat("%s declares %.0f MiB of memory; its runs peaked at %.0f MiB (%s)",
                             dag.ids[i], declared / mib, h.peak_rss_bytes / mib,
                             below ? "more than it reserves: agents overcommit"
                                   : "the rest is reserved for nothing")});
        Recommendation rec =
            HistoryRecommendation("memory-", RecommendationKind::kSetMemory, dag.ids[i], before);
        rec.new_memory_bytes = proposed;
        rec.description =
            absl::StrFormat("set %s's memory from %.0f MiB to %.0f MiB (%.1f x its peak RSS)",
                            dag.ids[i], declared / mib, proposed / mib, kMemoryHeadroom);
        out.recommendations.push_back(std::move(rec));
      }
    }
    if (h.retried_runs > 0 && h.retry_successes == 0 && spec.retry().max_retries() > 0) {
      const double wasted = h.failed_attempt_seconds / h.retried_runs;
      out.findings.push_back(
          {FindingKind::kFutileRetries,
           {dag.ids[i]},
           "",
           wasted,
           absl::StrFormat("%s was retried in %d runs and no retry ever succeeded: %s per run "
                           "spent in retries",
                           dag.ids[i], h.retried_runs, Secs(wasted))});
      Recommendation rec =
          HistoryRecommendation("retries-", RecommendationKind::kReduceRetries, dag.ids[i], before);
      rec.new_max_retries = 0;
      rec.saved_seconds = wasted;
      rec.description = absl::StrFormat(
          "set %s's retries from %d to 0: a failing run fails %s sooner (measured over %d runs)",
          dag.ids[i], spec.retry().max_retries(), Secs(wasted), h.retried_runs);
      out.recommendations.push_back(std::move(rec));
    }
  }

  // Nothing applied: the base run is the optimized one (one simulation less).
  out.optimized_makespan_seconds = optimized_caps == g.caps && optimized_priority == g.priority
                                       ? before
                                       : WhatIfMakespan(g, &optimized_caps, &optimized_priority);
  std::stable_sort(out.recommendations.begin(), out.recommendations.end(),
                   [](const Recommendation& a, const Recommendation& b) {
                     return (a.makespan_before - a.makespan_after) + a.saved_seconds >
                            (b.makespan_before - b.makespan_after) + b.saved_seconds;
                   });
  return out;
}

}  // namespace gyre::optimizer
