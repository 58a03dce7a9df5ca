// Predictor benchmarks (issue 24): a real gyre-predictor process on loopback,
// driven over gRPC. Prints each figure beside its target, with a reference
// measured in the same run (this machine is shared and noisy; nothing here is
// an assertion).
//
//   predictor_bench [--bin_dir=build] [--observations=200000] [--calls=300] [--runs=3]
//
// Each run starts a fresh gyre-predictor; the table gives the median of the
// runs with each run's figure in brackets, and the load average before and
// after (the machine may be shared: say so beside the figures).
//
// Figures: observations ingested per second (RecordObservations, batches of
// 5,000, one client thread), and PredictResources of 1,000 tasks p50/p99
// against a model that has learnt 10,000 tasks of 500 programs. Reference:
// the same PredictResources with no task (the gRPC round trip alone); the
// ingestion in-process, batched and one observation at a time.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "libs/testing/load_average.h"
#include "libs/testing/scratch_dir.h"
#include "services/predictor/resource_predictor.h"

namespace {

namespace v1 = ::gyre::v1;

constexpr int kBatch = 5000;
constexpr int kPrograms = 500;
constexpr int kTasks = 10000;

v1::ResourceObservation ObservationOf(int i) {
  v1::ResourceObservation o;
  o.set_workflow(absl::StrCat("workflows/w", i % 50));
  o.set_task_id(absl::StrCat("task-", i % kTasks));
  o.set_identity(absl::StrCat("id-", i % (kTasks * 4)));
  o.set_program(absl::StrCat("prog-", i % kPrograms));
  o.set_queue(absl::StrCat("queue-", i % 8));
  const double input_bytes = 1e6 * (1 + (i * 7919) % 1000);
  (*o.mutable_context_values())["input_bytes"] = input_bytes;
  o.mutable_duration()->set_seconds(1 + static_cast<int64_t>(input_bytes / 1e7) + i % 3);
  o.set_peak_memory_bytes(int64_t{100} << 20 | (i % 1000) << 10);
  o.set_cpu_cores(0.5 + (i % 4) * 0.5);
  o.set_succeeded(true);
  o.mutable_end_time()->set_seconds(1700000000 + i / 100);
  return o;
}

double Percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(q * values.size()))];
}

// One run's figures.
struct Figures {
  double ingest_rate = 0;   // over gRPC, /s
  double local_rate = 0;    // in-process, batched, /s
  double one_rate = 0;      // in-process, one at a time, /s
  double thousand_p50 = 0;  // ms
  double thousand_p99 = 0;  // ms
  double empty_p50 = 0;     // ms
  double empty_p99 = 0;     // ms
  size_t thousand_calls = 0;
};

// The median of one figure over the runs, then each run's in brackets.
std::string Summary(const std::vector<Figures>& runs, double Figures::*field,
                    const absl::FormatSpec<double>& format) {
  std::vector<double> values;
  for (const Figures& run : runs) values.push_back(run.*field);
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  // The lower median for an even count: never a value no run measured.
  std::string out = absl::StrFormat(format, sorted[(sorted.size() - 1) / 2]);
  if (runs.size() > 1) {
    out += " (";
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out += " · ";
      out += absl::StrFormat(format, values[i]);
    }
    out += ")";
  }
  return out;
}

// One run against a fresh gyre-predictor; nullopt (after saying why) on failure.
std::optional<Figures> RunOnce(const std::string& bin_dir, int64_t observations, int64_t calls) {
  gyre::testing::ScratchDir dir("predictor_bench");
  auto process = gyre::testing::ChildProcess::Start(
      {bin_dir + "/services/predictor/gyre-predictor", "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", absl::StrCat("--data_dir=", dir.path())});
  if (!process.ok()) {
    std::fprintf(stderr, "start: %s\n", process.status().ToString().c_str());
    return std::nullopt;
  }
  auto serving = (*process)->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"serving\""); },
      absl::Seconds(30));
  if (!serving.ok()) {
    std::fprintf(stderr, "not serving: %s\n", (*process)->Output().c_str());
    return std::nullopt;
  }
  const int port = gyre::testing::JsonIntField(*serving, "grpc_port").value_or(0);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto stub = v1::PredictorService::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args));

  // Batches are built before the clock starts: the figure is the service's.
  std::vector<v1::RecordObservationsRequest> batches((observations + kBatch - 1) / kBatch);
  for (int64_t i = 0; i < observations; ++i) {
    *batches[i / kBatch].add_observations() = ObservationOf(static_cast<int>(i));
  }
  const absl::Time ingest_start = absl::Now();
  for (const v1::RecordObservationsRequest& batch : batches) {
    grpc::ClientContext context;
    v1::RecordObservationsResponse response;
    grpc::Status status = stub->RecordObservations(&context, batch, &response);
    if (!status.ok()) {
      std::fprintf(stderr, "RecordObservations: %s\n", status.error_message().c_str());
      return std::nullopt;
    }
  }
  const double ingest_seconds = absl::ToDoubleSeconds(absl::Now() - ingest_start);
  Figures figures;
  figures.ingest_rate = observations / ingest_seconds;

  // Reference: the same batches recorded in this process, no gRPC.
  absl::StatusOr<std::unique_ptr<gyre::predictor::ResourcePredictor>> local =
      gyre::predictor::ResourcePredictor::Open({});
  if (!local.ok()) return std::nullopt;
  const absl::Time local_start = absl::Now();
  for (const v1::RecordObservationsRequest& batch : batches) {
    if (!(*local)->Record(batch).ok()) return std::nullopt;
  }
  figures.local_rate = observations / absl::ToDoubleSeconds(absl::Now() - local_start);
  // Reference: the same, one ResourceModel::Observe per observation (every
  // touched sketch refits per value: the path before batched refits).
  gyre::predictor::ResourceModel one_by_one;
  const absl::Time one_start = absl::Now();
  for (const v1::RecordObservationsRequest& batch : batches) {
    for (const v1::ResourceObservation& o : batch.observations()) {
      one_by_one.Observe(gyre::predictor::ResourcePredictor::ObservationOf(o));
    }
  }
  figures.one_rate = observations / absl::ToDoubleSeconds(absl::Now() - one_start);

  v1::PredictResourcesRequest empty;
  empty.set_workflow("workflows/w1");
  v1::PredictResourcesRequest thousand = empty;
  for (int i = 0; i < 1000; ++i) {
    v1::TaskSpec* task = thousand.add_tasks();
    task->set_id(absl::StrCat("task-", i * 7));
    task->add_command(absl::StrCat("/opt/bin/prog-", (i * 7) % kPrograms));
    task->set_queue(absl::StrCat("queue-", i % 8));
    v1::TaskContext* context = thousand.add_contexts();
    context->set_identity(absl::StrCat("id-", i * 7));
    (*context->mutable_context_values())["input_bytes"] = 1e6 * (1 + i);
  }
  auto time_calls = [&](const v1::PredictResourcesRequest& request, std::vector<double>* out) {
    for (int64_t i = 0; i < calls; ++i) {
      grpc::ClientContext context;
      v1::PredictResourcesResponse response;
      const absl::Time start = absl::Now();
      grpc::Status status = stub->PredictResources(&context, request, &response);
      out->push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      if (!status.ok() || response.predictions_size() != request.tasks_size()) {
        std::fprintf(stderr, "PredictResources: %s\n", status.error_message().c_str());
        return false;
      }
    }
    return true;
  };
  std::vector<double> empty_ms, thousand_ms;
  // Alternate the two in blocks so both see the same machine.
  for (int round = 0; round < 3; ++round) {
    if (!time_calls(empty, &empty_ms) || !time_calls(thousand, &thousand_ms)) return std::nullopt;
  }
  figures.thousand_p50 = Percentile(thousand_ms, 0.5);
  figures.thousand_p99 = Percentile(thousand_ms, 0.99);
  figures.empty_p50 = Percentile(empty_ms, 0.5);
  figures.empty_p99 = Percentile(empty_ms, 0.99);
  figures.thousand_calls = thousand_ms.size();
  (*process)->Signal(SIGTERM);
  (*process)->WaitForExit(absl::Seconds(30));
  return figures;
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin_dir = "build";
  int64_t observations = 200000;
  int64_t calls = 300;
  int64_t runs = 3;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--bin_dir=")) {
      bin_dir = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--observations=")) {
      if (!absl::SimpleAtoi(arg, &observations)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--calls=")) {
      if (!absl::SimpleAtoi(arg, &calls)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--runs=")) {
      if (!absl::SimpleAtoi(arg, &runs) || runs < 1) return 2;
    } else {
      std::fprintf(
          stderr,
          "usage: predictor_bench [--bin_dir=build] [--observations=N] [--calls=N] [--runs=N]\n");
      return 2;
    }
  }
  const double load_before = gyre::testing::LoadAverage();
  std::vector<Figures> results;
  for (int64_t run = 0; run < runs; ++run) {
    std::optional<Figures> figures = RunOnce(bin_dir, observations, calls);
    if (!figures) return 1;
    results.push_back(*figures);
  }
  const double load_after = gyre::testing::LoadAverage();
  const std::vector<Figures>& r = results;
  std::printf("%lld runs, medians (each run in brackets); load average %.2f before, %.2f after\n\n",
              static_cast<long long>(runs), load_before, load_after);
  std::vector<double> ingest;
  for (const Figures& run : r) ingest.push_back(run.ingest_rate);
  std::sort(ingest.begin(), ingest.end());
  const double ingest_median = ingest[(ingest.size() - 1) / 2];
  std::vector<double> p99;
  for (const Figures& run : r) p99.push_back(run.thousand_p99);
  std::sort(p99.begin(), p99.end());
  const double p99_median = p99[(p99.size() - 1) / 2];
  std::printf("| Figure | Measured | Target | Met |\n|---|---|---|---|\n");
  std::printf(
      "| observations ingested (RecordObservations, batches of %d, %lld a run) | %s /s | "
      ">= 100,000 /s | %s |\n",
      kBatch, static_cast<long long>(observations),
      Summary(r, &Figures::ingest_rate, "%.0f").c_str(),
      ingest_median >= 100000 ? "yes" : "**no**");
  std::printf(
      "| the same observations recorded in-process (ResourcePredictor::Record, no gRPC) | %s /s "
      "| (reference) | — |\n",
      Summary(r, &Figures::local_rate, "%.0f").c_str());
  std::printf(
      "| the same in-process, one ResourceModel::Observe each (refit per observation) | %s /s "
      "| (reference) | — |\n",
      Summary(r, &Figures::one_rate, "%.0f").c_str());
  std::printf(
      "| PredictResources, 1,000 tasks, p50 (%zu calls a run) | %s ms | (reference) | — |\n",
      r[0].thousand_calls, Summary(r, &Figures::thousand_p50, "%.2f").c_str());
  std::printf("| PredictResources, 1,000 tasks, p99 | %s ms | p99 < 10 ms | %s |\n",
              Summary(r, &Figures::thousand_p99, "%.2f").c_str(),
              p99_median < 10 ? "yes" : "**no**");
  std::printf(
      "| PredictResources, no task (the round trip), p50 / p99 | %s / %s ms | (reference) | — |\n",
      Summary(r, &Figures::empty_p50, "%.3f").c_str(),
      Summary(r, &Figures::empty_p99, "%.3f").c_str());
  return 0;
}
