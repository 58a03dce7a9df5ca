#include "services/gateway/gateway_routes.h"

#include "gtest/gtest.h"
#include "libs/testing/http_get.h"

namespace gyre::gateway {
namespace {

TEST(GatewayRoutesTest, HealthzAnswersOk) {
  const HttpReply reply = RouteGatewayRequest({"GET", "/healthz", ""});
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "{\"status\":\"ok\"}");
}

TEST(GatewayRoutesTest, UnbuiltApiPathAnswersNotImplementedHonestly) {
  const HttpReply reply = RouteGatewayRequest({"POST", "/v1/executions", "{}"});
  EXPECT_EQ(reply.status, 501);
  EXPECT_EQ(reply.body,
            "{\"error\":{\"code\":501,\"status\":\"UNIMPLEMENTED\",\"message\":"
            "\"POST /v1/executions is not implemented yet in this version of Gyre\"}}");
}

TEST(GatewayRoutesTest, UnknownPathIsNotFound) {
  EXPECT_EQ(RouteGatewayRequest({"GET", "/nope", ""}).status, 404);
}

TEST(HttpServerTest, ServesRoutesOverRealSockets) {
  HttpServer::Options options;
  options.address = "127.0.0.1:0";
  HttpServer server(options, RouteGatewayRequest);
  ASSERT_TRUE(server.Start().ok());
  auto health = testing::HttpGet("127.0.0.1", server.port(), "/healthz");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->content_type, "application/json");
  auto missing = testing::HttpGet("127.0.0.1", server.port(), "/v1/workflows");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->status, 501);
  server.Stop();
}

TEST(HttpServerTest, BadAddressIsRejected) {
  HttpServer::Options options;
  options.address = "localhost";
  HttpServer server(options, RouteGatewayRequest);
  EXPECT_EQ(server.Start().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gyre::gateway
