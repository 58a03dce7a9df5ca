#include "services/gateway/auth_failure.h"

#include "absl/types/optional.h"

#include "absl/strings/cord.h"

namespace gyre::gateway {

namespace {
constexpr absl::string_view kReasonPayload = "gyre.dev/auth-failure-reason";
}  // namespace

absl::Status AuthFailure(absl::string_view reason, absl::string_view message) {
  absl::Status status = absl::UnauthenticatedError(message);
  status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

std::string AuthFailureReason(const absl::Status& status) {
  absl::optional<absl::Cord> reason = status.GetPayload(kReasonPayload);
  return reason.has_value() ? std::string(*reason) : "invalid";
}

}  // namespace gyre::gateway
