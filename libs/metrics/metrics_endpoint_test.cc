#include "libs/metrics/metrics_endpoint.h"

#include "gtest/gtest.h"
#include "libs/testing/http_get.h"
#include "prometheus/counter.h"

namespace gyre::metrics {
namespace {

TEST(MetricsEndpointTest, ServesBuildInfoProcessAndServiceMetrics) {
  MetricsEndpoint endpoint("orchestrator");
  prometheus::BuildCounter()
      .Name("gyre_test_events_total")
      .Help("test counter")
      .Register(endpoint.registry())
      .Add({})
      .Increment(3);
  ASSERT_TRUE(endpoint.Start("127.0.0.1:0").ok());
  ASSERT_GT(endpoint.port(), 0);

  auto response = testing::HttpGet("127.0.0.1", endpoint.port(), "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_NE(response->body.find("gyre_build_info{service=\"orchestrator\",version=\""),
            std::string::npos);
  EXPECT_NE(response->body.find("gyre_test_events_total 3"), std::string::npos);
  EXPECT_NE(response->body.find("process_resident_memory_bytes "), std::string::npos);
  EXPECT_NE(response->body.find("process_cpu_seconds_total "), std::string::npos);
  EXPECT_NE(response->body.find("process_open_fds "), std::string::npos);
}

TEST(MetricsEndpointTest, BindFailureIsAStatusNamingTheAddress) {
  MetricsEndpoint first("a");
  ASSERT_TRUE(first.Start("127.0.0.1:0").ok());
  MetricsEndpoint second("b");
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  const absl::Status status = second.Start(taken);
  // FailedPrecondition: the operator's to fix (the process exits 2).
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "metrics_address " + taken +
                ": cannot listen (port in use by another process, or not an address of this "
                "machine); choose another with --metrics_address")
      << status;
}

}  // namespace
}  // namespace gyre::metrics
