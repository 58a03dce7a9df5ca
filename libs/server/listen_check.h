#ifndef GYRE_LIBS_SERVER_LISTEN_CHECK_H_
#define GYRE_LIBS_SERVER_LISTEN_CHECK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gyre::server {

// Checks, before anything starts, that this process can listen on `address`
// ("host:port"; port 0 always can), by binding a throwaway socket to each of
// the host's addresses. FailedPrecondition naming `key` (the config key and
// flag) when another process listens there, PermissionDenied when the port
// is privileged: said once, clearly, instead of a library's error text after
// half the process has started. Best effort (the port can be taken between
// this check and the real bind; that bind fails then, as it must, because
// every Gyre listener owns its port exclusively).
absl::Status CheckListenAddressFree(absl::string_view key, const std::string& address);

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_LISTEN_CHECK_H_
