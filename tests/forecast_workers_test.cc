// orchestrator_forecast_workers through the real processes: an orchestrator
// with predictor_address set asks a real gyre-predictor for each worker
// type's load and exports the forecast, clamped by the pool's bounds.
#include "absl/strings/str_split.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

class LoadForecast : public Cluster {
 protected:
  std::vector<std::string> ExtraOrchestratorEnv() override {
    if (predictor_ == nullptr) {
      auto predictor =
          ChildProcess::Start({Binary("services/predictor/gyre-predictor"),
                               "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                               "--shutdown_grace=2s", "--data_dir=" + root_ + "/predictor"});
      EXPECT_TRUE(predictor.ok()) << predictor.status();
      if (!predictor.ok()) return {};
      predictor_ = *std::move(predictor);
      auto serving = predictor_->WaitForLine(IsServing, absl::Seconds(20));
      EXPECT_TRUE(serving.ok()) << serving.status() << predictor_->Output();
      if (!serving.ok()) return {};
      predictor_address_ =
          absl::StrCat("127.0.0.1:", testing::JsonIntField(*serving, "grpc_port").value_or(0));
    }
    // The fixture configures the default pool with max 4; "dag" gets the
    // default policy (max 10).
    return {"GYRE_PREDICTOR_ADDRESS=" + predictor_address_, "GYRE_FORECAST_INTERVAL=1s"};
  }

  // The orchestrator_forecast_workers sample for `worker_type` and
  // `horizon`, or -1.
  double Forecast(const std::string& worker_type, const std::string& horizon) {
    auto response = testing::HttpGet("127.0.0.1", metrics_port_, "/metrics");
    if (!response.ok()) return -1;
    for (absl::string_view line : absl::StrSplit(response->body, '\n')) {
      if (!absl::StartsWith(line, "orchestrator_forecast_workers{") ||
          !absl::StrContains(line, absl::StrCat("worker_type=\"", worker_type, "\"")) ||
          !absl::StrContains(line, absl::StrCat("horizon=\"", horizon, "\""))) {
        continue;
      }
      double value = -1;
      if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) return value;
    }
    return -1;
  }

  // Polls until the sample equals `want` (the forecaster runs every 1 s).
  bool AwaitForecast(const std::string& worker_type, const std::string& horizon, double want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      if (Forecast(worker_type, horizon) == want) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  std::unique_ptr<ChildProcess> predictor_;
  std::string predictor_address_;
};

TEST_F(LoadForecast, WorkersAreForecastFromTheDagAndClampedByThePool) {
  // No agent: nothing runs, so the forecast is the DAG as submitted plus
  // the recent arrivals (this execution's tasks within 5 min, per worker
  // type: rate x min(t, their mean duration)). "default": six 120 s sleeps
  // that can all start now, 6+ busy slots, clamped to the pool's max of 4.
  // "dag": a 30 s task, then 2 in parallel from 30 s to 70 s; arrivals add
  // 3/300 per s x min(t, 36.7 s) <= 0.37: 2.3 slots at 30 s, so 3 workers
  // within 60 s and within 300 s.
  const std::string execution = Start(R"(name: forecast
tasks:
  - {id: w1, builtin: sleep, duration: 120s}
  - {id: w2, builtin: sleep, duration: 120s}
  - {id: w3, builtin: sleep, duration: 120s}
  - {id: w4, builtin: sleep, duration: 120s}
  - {id: w5, builtin: sleep, duration: 120s}
  - {id: w6, builtin: sleep, duration: 120s}
  - {id: first, queue: dag, builtin: sleep, duration: 30s}
  - {id: left, queue: dag, builtin: sleep, duration: 40s, depends_on: [first]}
  - {id: right, queue: dag, builtin: sleep, duration: 40s, depends_on: [first]}
)");
  ASSERT_FALSE(execution.empty());
  EXPECT_TRUE(AwaitForecast("default", "60s", 4)) << Forecast("default", "60s");
  EXPECT_TRUE(AwaitForecast("default", "300s", 4)) << Forecast("default", "300s");
  EXPECT_TRUE(AwaitForecast("dag", "60s", 3)) << Forecast("dag", "60s");
  EXPECT_TRUE(AwaitForecast("dag", "300s", 3)) << Forecast("dag", "300s");
}

}  // namespace
}  // namespace gyre::e2e
