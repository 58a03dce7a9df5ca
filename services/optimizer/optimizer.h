#ifndef GYRE_SERVICES_OPTIMIZER_OPTIMIZER_H_
#define GYRE_SERVICES_OPTIMIZER_OPTIMIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gyre/v1/optimizer_service.pb.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "services/optimizer/workflow_analysis.h"

namespace gyre::optimizer {

// Bounds on a request (each named in the error that enforces it).
inline constexpr int kMaxAnalyzedTasks = 100000;
inline constexpr int kMaxHistoryExecutions = 100;
inline constexpr int kMaxRecommendationIds = 100;
// Tasks per PredictResources call (the predictor's batch limit).
inline constexpr int kMaxPredictedTasksPerCall = 10000;

// The optimizer's logic behind its gRPC API: gathers a definition, its
// durations and history (inline, or from the orchestrator over gRPC), runs
// the analysis (workflow_analysis.h) and applies chosen recommendations as
// a new workflow version. Without an orchestrator only inline definitions
// can be analyzed. With a predictor, command tasks with no actual or given
// duration take gyre-predictor's learned prediction (one PredictResources
// call per 10,000 such tasks, each within `predict_timeout`; a predictor
// that does not answer leaves them to the builtin/default durations and the
// response says why). Thread-safe (stubs are).
class Optimizer {
 public:
  Optimizer(std::shared_ptr<gyre::v1::OrchestratorService::StubInterface> orchestrator,
            absl::Duration call_timeout,
            std::shared_ptr<gyre::v1::PredictorService::StubInterface> predictor = nullptr,
            absl::Duration predict_timeout = absl::Seconds(2));

  absl::StatusOr<gyre::v1::AnalyzeWorkflowResponse> Analyze(
      const gyre::v1::AnalyzeWorkflowRequest& request);
  absl::StatusOr<gyre::v1::ApplyOptimizationsResponse> Apply(
      const gyre::v1::ApplyOptimizationsRequest& request);

 private:
  // `predictor_error` (may be null): why the predictor's durations are
  // missing, when it was asked and did not answer.
  absl::StatusOr<AnalysisInput> Gather(const gyre::v1::AnalyzeWorkflowRequest& request,
                                       std::string* analyzed, std::string* predictor_error);
  absl::Status AddPredictions(AnalysisInput* input) const;
  absl::Status AddHistory(const std::string& execution, AnalysisInput* input, bool actual_durations,
                          gyre::v1::Execution* fetched);
  absl::Status NeedOrchestrator(const std::string& what) const;

  std::shared_ptr<gyre::v1::OrchestratorService::StubInterface> orchestrator_;
  absl::Duration call_timeout_;
  std::shared_ptr<gyre::v1::PredictorService::StubInterface> predictor_;
  absl::Duration predict_timeout_;
};

// The analysis as the API returns it.
gyre::v1::AnalyzeWorkflowResponse ToResponse(const Analysis& analysis, double default_seconds);

}  // namespace gyre::optimizer

#endif  // GYRE_SERVICES_OPTIMIZER_OPTIMIZER_H_
