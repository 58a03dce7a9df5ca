#include "libs/common/status_mapping.h"

#include "gtest/gtest.h"

namespace gyre {
namespace {

TEST(StatusMappingTest, GrpcRoundTripKeepsCodeAndMessage) {
  const absl::Status original = absl::NotFoundError("workflow \"etl\" not found");
  const grpc::Status wire = ToGrpcStatus(original);
  EXPECT_EQ(wire.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(wire.error_message(), "workflow \"etl\" not found");
  EXPECT_EQ(FromGrpcStatus(wire), original);
}

TEST(StatusMappingTest, OkMapsToOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kOk), 200);
}

TEST(StatusMappingTest, HttpCodesFollowGoogleRpcMapping) {
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kFailedPrecondition), 409);
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kUnimplemented), 501);
  EXPECT_EQ(ToHttpStatusCode(absl::StatusCode::kUnavailable), 503);
}

TEST(StatusMappingTest, NotImplementedNamesTheRpc) {
  const absl::Status status = NotImplemented("gyre.v1.OptimizerService/AnalyzeWorkflow");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(status.message().find("AnalyzeWorkflow"), std::string::npos);
}

}  // namespace
}  // namespace gyre
