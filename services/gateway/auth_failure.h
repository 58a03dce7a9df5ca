#ifndef GYRE_SERVICES_GATEWAY_AUTH_FAILURE_H_
#define GYRE_SERVICES_GATEWAY_AUTH_FAILURE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gyre::gateway {

// An authentication failure: Unauthenticated with `message` (shown to the
// client; never a secret) and a machine-readable `reason` from a fixed set
// ("expired", "wrong_password", ...), carried as a status payload so the
// metrics can count failures by reason with a bounded label.
absl::Status AuthFailure(absl::string_view reason, absl::string_view message);

// The reason of an AuthFailure; "invalid" for any other status.
std::string AuthFailureReason(const absl::Status& status);

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_AUTH_FAILURE_H_
