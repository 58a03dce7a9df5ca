// A ServiceHost tells what its API has not built yet, everywhere an operator
// looks: the RPC's own health name is NOT_SERVING, gyre_rpc_implemented is 0
// for it, its start log warns naming it, and a call is UNIMPLEMENTED naming
// the method; a built RPC of the same service is SERVING and 1.
#include "libs/server/service_host.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "gyre/v1/optimizer_service.grpc.pb.h"
#include "libs/logging/logger.h"
#include "libs/testing/http_get.h"

namespace gyre::server {
namespace {

// The optimizer's API with AnalyzeWorkflow built and ApplyOptimizations left
// to the generated base class, as an RPC not built yet is.
class HalfBuiltOptimizer : public v1::OptimizerService::Service {
 public:
  grpc::Status AnalyzeWorkflow(grpc::ServerContext* /*context*/,
                               const v1::AnalyzeWorkflowRequest* /*request*/,
                               v1::AnalyzeWorkflowResponse* /*response*/) override {
    return grpc::Status::OK;
  }
};

// What the process logs while it lives, read from a pipe.
class CapturedLog {
 public:
  CapturedLog() {
    if (pipe(fds_) != 0) return;
    fcntl(fds_[0], F_SETFL, O_NONBLOCK);
    logging::SetOutputFd(fds_[1]);
  }
  ~CapturedLog() {
    logging::SetOutputFd(STDERR_FILENO);
    close(fds_[0]);
    close(fds_[1]);
  }
  // Everything logged so far (and not read before).
  std::string Read() {
    std::string text;
    char buffer[4096];
    ssize_t got;
    while ((got = read(fds_[0], buffer, sizeof(buffer))) > 0) text.append(buffer, got);
    return text;
  }

 private:
  int fds_[2] = {-1, -1};
};

// The line of `text` that contains `part`; empty if none does.
std::string LineWith(const std::string& text, const std::string& part) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StrContains(line, part)) return std::string(line);
  }
  return "";
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& name) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(name);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  EXPECT_TRUE(status.ok()) << name << ": " << status.error_message();
  return response.status();
}

TEST(ServiceHostTest, AnRpcNotBuiltYetIsSaidInHealthMetricsAndTheStartLog) {
  CapturedLog log;
  ServerConfig config;
  config.grpc_address = "127.0.0.1:0";
  config.metrics_address = "127.0.0.1:0";
  config.shutdown_grace = absl::Seconds(1);
  HalfBuiltOptimizer service;
  ServiceHost host("service_host_test", config);
  host.AddService(&service, "gyre.v1.OptimizerService");
  host.DeclareImplementedRpcs("gyre.v1.OptimizerService", {"AnalyzeWorkflow"});
  ASSERT_TRUE(host.Start().ok());

  const std::string started = log.Read();
  const std::string warning = LineWith(
      started,
      "\"msg\":\"not built yet in this version of Gyre: these RPCs answer UNIMPLEMENTED\"");
  EXPECT_TRUE(absl::StrContains(warning, "\"level\":\"warn\"")) << started;
  // Only the RPC not built, not the built one.
  EXPECT_TRUE(absl::EndsWith(
      warning, ",\"not_implemented\":\"gyre.v1.OptimizerService/ApplyOptimizations\"}"))
      << started;

  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", host.grpc_port()),
                                     grpc::InsecureChannelCredentials());
  using Serving = grpc::health::v1::HealthCheckResponse;
  EXPECT_EQ(Health(channel, "gyre.v1.OptimizerService/ApplyOptimizations"), Serving::NOT_SERVING);
  EXPECT_EQ(Health(channel, "gyre.v1.OptimizerService/AnalyzeWorkflow"), Serving::SERVING);
  // The service as a whole serves: what is built works.
  EXPECT_EQ(Health(channel, "gyre.v1.OptimizerService"), Serving::SERVING);

  EXPECT_EQ(testing::MetricSample(
                host.metrics_port(),
                "gyre_rpc_implemented{rpc=\"gyre.v1.OptimizerService/ApplyOptimizations\"}"),
            0);
  EXPECT_EQ(testing::MetricSample(
                host.metrics_port(),
                "gyre_rpc_implemented{rpc=\"gyre.v1.OptimizerService/AnalyzeWorkflow\"}"),
            1);

  auto stub = v1::OptimizerService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ApplyOptimizationsResponse response;
  const grpc::Status call = stub->ApplyOptimizations(&context, {}, &response);
  EXPECT_EQ(call.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(absl::StrContains(call.error_message(),
                                "gyre.v1.OptimizerService/ApplyOptimizations is not implemented "
                                "yet in this version of Gyre"))
      << call.error_message();
  host.Shutdown();
}

TEST(ServiceHostTest, AServiceWithEveryRpcBuiltWarnsOfNothing) {
  CapturedLog log;
  ServerConfig config;
  config.grpc_address = "127.0.0.1:0";
  config.metrics_address = "127.0.0.1:0";
  config.shutdown_grace = absl::Seconds(1);
  // Declared built (as a module declares what its service implements): the
  // host reports the declaration, which is the module's to keep true.
  HalfBuiltOptimizer service;
  ServiceHost host("service_host_test", config);
  host.AddService(&service, "gyre.v1.OptimizerService");
  host.DeclareImplementedRpcs("gyre.v1.OptimizerService",
                              {"AnalyzeWorkflow", "ApplyOptimizations"});
  ASSERT_TRUE(host.Start().ok());
  const std::string started = log.Read();
  EXPECT_TRUE(absl::StrContains(started, "\"msg\":\"serving\"")) << started;
  EXPECT_FALSE(absl::StrContains(started, "not built yet")) << started;
  EXPECT_EQ(testing::MetricSample(
                host.metrics_port(),
                "gyre_rpc_implemented{rpc=\"gyre.v1.OptimizerService/ApplyOptimizations\"}"),
            1);
  host.Shutdown();
}

}  // namespace
}  // namespace gyre::server
