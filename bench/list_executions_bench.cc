// ListExecutions with a filter (issue 21): a page served from ExecutionTable's
// indexes (by workflow, state, tenant) against the scan it replaced, measured
// in the same run over the same executions. Prints figure vs target.
//
//   list_executions_bench [executions (default 200000)]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/queue_table.h"
#include "services/orchestrator/workflow_registry.h"

namespace v1 = ::gyre::v1;
using gyre::orchestrator::ExecutionEntry;
using gyre::orchestrator::ExecutionTable;

namespace {

constexpr int kPage = 100;
constexpr uint32_t kMaxListScan = 10000;  // what the scan looked at per call at most

// The scan ListExecutions did before the indexes (the reference): newest
// first over every slot, the filter checked on each, at most kMaxListScan
// per call. Returns the page's size; `*looked` counts what it examined.
// `capped` false: on until the page is full (what a client paging through
// the scan's short pages paid in all, in one call).
int ScanPage(const ExecutionTable& table, const v1::ListExecutionsRequest& req, int* looked,
             bool capped = true) {
  v1::ListExecutionsResponse response;
  uint32_t position = static_cast<uint32_t>(table.size());
  const uint32_t scan_end = capped && position > kMaxListScan ? position - kMaxListScan : 0;
  *looked = 0;
  for (; position > scan_end && response.executions_size() < kPage; --position) {
    ++*looked;
    const ExecutionEntry& exec = table.at(position - 1);
    if (!req.workflow().empty() && exec.definition->name() != req.workflow()) continue;
    if (!req.states().empty() &&
        std::find(req.states().begin(), req.states().end(), exec.state) == req.states().end()) {
      continue;
    }
    *response.add_executions() = gyre::orchestrator::ExecutionProto(exec, false);
  }
  return response.executions_size();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int executions = argc > 1 ? std::atoi(argv[1]) : 200000;
  gyre::orchestrator::EngineMetrics metrics(nullptr);
  gyre::orchestrator::QueueTable queues(metrics);
  ExecutionTable table(metrics);
  // 1,000 workflows; "w-rare" gets one execution in 2,000 (a filter that
  // matches little), the others share the rest.
  std::vector<std::shared_ptr<const v1::WorkflowDefinition>> defs;
  for (int i = 0; i < 1000; ++i) {
    v1::WorkflowDefinition def;
    def.set_name(i == 0 ? "workflows/w-rare" : absl::StrCat("workflows/w-", i));
    def.add_tasks()->set_id("a");
    def.mutable_tasks(0)->add_command("true");
    if (!gyre::orchestrator::WorkflowRegistry::Prepare(nullptr, def).ok()) return 1;
    defs.push_back(std::make_shared<const v1::WorkflowDefinition>(std::move(def)));
  }
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  for (int i = 0; i < executions; ++i) {
    v1::ExecutionStarted record;
    record.set_execution_id(table.NewId(now));
    *record.mutable_create_time() = gyre::orchestrator::ToProto(now);
    const auto& def = i % 2000 == 0 ? defs[0] : defs[1 + i % 999];
    ExecutionEntry& exec = table.Build(record, def, nullptr, queues);
    // Most executions finished long ago; one in 500 is still running.
    const v1::ExecutionState state = i % 500 == 0 ? v1::EXECUTION_RUNNING : v1::EXECUTION_SUCCEEDED;
    table.CountState(exec, exec.state, state);
    exec.state = state;
    if (exec.final()) {
      exec.end_time = now + absl::Seconds(i);
      table.Ended(exec);
    }
  }

  struct Case {
    const char* name;
    v1::ListExecutionsRequest req;
  };
  std::vector<Case> cases(3);
  cases[0].name = "workflow (1 in 2,000)";
  cases[0].req.set_workflow("workflows/w-rare");
  cases[1].name = "state RUNNING (1 in 500)";
  cases[1].req.add_states(v1::EXECUTION_RUNNING);
  cases[2].name = "workflow (1 in 999)";
  cases[2].req.set_workflow("workflows/w-7");
  std::printf("ListExecutions, one filtered page of %d, %d executions (median of 21)\n", kPage,
              executions);
  std::printf(
      "| filter | index: us/page (executions) | scan, one call: us (executions, looked at) | "
      "scan to a full page: us (looked at) | target | met |\n|---|---|---|---|---|---|\n");
  for (const Case& c : cases) {
    std::vector<double> index_us, scan_us, full_us;
    int index_size = 0, scan_size = 0, looked = 0, full_looked = 0;
    for (int run = 0; run < 21; ++run) {
      auto start = std::chrono::steady_clock::now();
      absl::StatusOr<v1::ListExecutionsResponse> page = table.List(c.req, kPage);
      index_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
              .count());
      if (!page.ok()) return 1;
      index_size = page->executions_size();
      start = std::chrono::steady_clock::now();
      scan_size = ScanPage(table, c.req, &looked);
      scan_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
              .count());
      start = std::chrono::steady_clock::now();
      ScanPage(table, c.req, &full_looked, /*capped=*/false);
      full_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
              .count());
    }
    const double index = Median(index_us);
    // Target: O(page), i.e. no slower than the scan, and a full page when
    // that many match (the scan's page comes back short).
    const bool met = index <= Median(scan_us) && index_size == kPage;
    std::printf(
        "| %s | %.0f (%d) | %.0f (%d, %d) | %.0f (%d) | <= one scan call, full page | %s |\n",
        c.name, index, index_size, Median(scan_us), scan_size, looked, Median(full_us), full_looked,
        met ? "yes" : "**no**");
  }
  // What one retention batch holds the engine lock for: forgetting 500
  // finished executions, oldest first (Retention::RunPass's work); median
  // of 9 batches (one preemption on a loaded machine moves a single one).
  std::vector<double> forget_us;
  for (int batch = 0; batch < 9; ++batch) {
    std::vector<std::string> due;
    for (const auto& [end, slot] : table.ended()) {
      if (due.size() == 500) break;
      due.push_back(table.at(slot).id);
    }
    const auto start = std::chrono::steady_clock::now();
    for (const std::string& id : due) table.Forget(id);
    forget_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
  }
  const double forget = Median(forget_us);
  std::printf(
      "| retention: forget one batch of 500 finished executions (1 task each), median of 9 "
      "(min %.0f, max %.0f) | %.0f us | - | - | < 10 ms (a short lock hold) | %s |\n",
      *std::min_element(forget_us.begin(), forget_us.end()),
      *std::max_element(forget_us.begin(), forget_us.end()), forget,
      forget < 10000 ? "yes" : "**no**");
  return 0;
}
