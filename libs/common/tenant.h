// Tenants: who owns a workflow and its executions. The gateway names the
// tenant of each call in the "x-gyre-tenant" gRPC metadata; the
// orchestrator records it on workflows and filters lists by it.
#ifndef GYRE_LIBS_COMMON_TENANT_H_
#define GYRE_LIBS_COMMON_TENANT_H_

#include "absl/strings/string_view.h"

namespace gyre {

// The metadata key carrying the caller's tenant (lower case, as gRPC wants).
inline constexpr char kTenantMetadata[] = "x-gyre-tenant";

// The tenant of objects stored before tenants existed, and of principals
// configured without one.
inline constexpr absl::string_view kDefaultTenant = "default";

// `tenant`, or "default" when it is empty: the stored form and the compared
// form differ only there.
inline absl::string_view TenantOrDefault(absl::string_view tenant) {
  return tenant.empty() ? kDefaultTenant : tenant;
}

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_TENANT_H_
