#include "services/predictor/load_forecast.h"

#include "gtest/gtest.h"

namespace gyre::predictor {
namespace {

gyre::v1::ForecastQueueLoadRequest Request(int horizon_seconds, int step_seconds) {
  gyre::v1::ForecastQueueLoadRequest request;
  request.set_worker_type("default");
  request.mutable_horizon()->set_seconds(horizon_seconds);
  request.mutable_step()->set_seconds(step_seconds);
  return request;
}

void AddPending(gyre::v1::ForecastQueueLoadRequest* request, double start, double duration) {
  gyre::v1::PendingTaskLoad* task = request->add_pending();
  task->set_earliest_start_seconds(start);
  task->set_duration_seconds(duration);
}

std::vector<double> Busy(const gyre::v1::ForecastQueueLoadResponse& response) {
  std::vector<double> busy;
  for (const auto& point : response.points()) busy.push_back(point.busy_slots());
  return busy;
}

TEST(LoadForecastTest, CountsEachTaskOverItsExpectedIntervalFromItsDagPosition) {
  // One task running 25 s more; behind it a fan-out of 4 tasks of 20 s that
  // can start at 25 s; then a join of 10 s at 45 s. Points every 10 s.
  gyre::v1::ForecastQueueLoadRequest request = Request(60, 10);
  request.add_running_remaining_seconds(25);
  for (int i = 0; i < 4; ++i) AddPending(&request, 25, 20);
  AddPending(&request, 45, 10);
  request.set_slots_per_agent(2);
  absl::StatusOr<gyre::v1::ForecastQueueLoadResponse> forecast =
      ForecastQueueLoad(request, absl::FromUnixSeconds(1000));
  ASSERT_TRUE(forecast.ok()) << forecast.status();
  // t=0,10,20: the running task; 30, 40: the fan-out; 50: the join; 60: nothing.
  EXPECT_EQ(Busy(*forecast), (std::vector<double>{1, 1, 1, 4, 4, 1, 0}));
  EXPECT_EQ(forecast->points(3).desired_workers(), 2);  // 4 slots / 2 per agent
  EXPECT_EQ(forecast->points(5).desired_workers(), 1);
  EXPECT_EQ(forecast->points(1).time().seconds(), 1010);
  // Nothing extrapolated: every slot-second is a known task's.
  EXPECT_EQ(forecast->confidence(), 1.0);
}

TEST(LoadForecastTest, SteadyArrivalsRampUpToRateTimesDuration) {
  gyre::v1::ForecastQueueLoadRequest request = Request(300, 60);
  request.set_arrival_rate_per_second(0.5);
  request.set_arrival_task_seconds(120);
  absl::StatusOr<gyre::v1::ForecastQueueLoadResponse> forecast =
      ForecastQueueLoad(request, absl::UnixEpoch());
  ASSERT_TRUE(forecast.ok()) << forecast.status();
  // 0.5/s x min(t, 120 s): 0, 30, then 60 from 120 s on.
  EXPECT_EQ(Busy(*forecast), (std::vector<double>{0, 30, 60, 60, 60, 60}));
  EXPECT_EQ(forecast->confidence(), 0.0);
}

TEST(LoadForecastTest, RefusesRequestsOverItsLimitsNamingThem) {
  EXPECT_NE(ForecastQueueLoad(Request(0, 1), absl::UnixEpoch()).status().message().find("horizon"),
            absl::string_view::npos);
  EXPECT_NE(ForecastQueueLoad(Request(25 * 3600, 60), absl::UnixEpoch())
                .status()
                .message()
                .find("kMaxForecastHorizon"),
            absl::string_view::npos);
  EXPECT_NE(ForecastQueueLoad(Request(60, 0), absl::UnixEpoch()).status().message().find("step"),
            absl::string_view::npos);
  EXPECT_NE(
      ForecastQueueLoad(Request(20000, 1), absl::UnixEpoch()).status().message().find("10000"),
      absl::string_view::npos);
  gyre::v1::ForecastQueueLoadRequest negative = Request(60, 10);
  AddPending(&negative, -1, 5);
  EXPECT_EQ(ForecastQueueLoad(negative, absl::UnixEpoch()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gyre::predictor
