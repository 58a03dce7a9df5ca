#include "libs/server/listen_check.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace gyre::server {

absl::Status CheckListenAddressFree(absl::string_view key, const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return absl::OkStatus();  // the config check says why
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (port == "0") return absl::OkStatus();
  absl::string_view bare = host;
  if (absl::ConsumePrefix(&bare, "[")) absl::ConsumeSuffix(&bare, "]");
  host = std::string(bare);

  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  // An unresolvable host is left to the real listener, which says so.
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return absl::OkStatus();
  absl::Status result = absl::OkStatus();
  for (const addrinfo* at = found; at != nullptr && result.ok(); at = at->ai_next) {
    const int fd = socket(at->ai_family, at->ai_socktype | SOCK_CLOEXEC, at->ai_protocol);
    if (fd < 0) continue;  // e.g. no IPv6 here: not this check's business
    // SO_REUSEADDR as every listener sets it, so that connections of a
    // server that just stopped (TIME_WAIT) do not count as "in use"; Linux
    // still refuses it next to a socket that listens.
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, at->ai_addr, at->ai_addrlen) != 0) {
      const int error = errno;
      if (error == EADDRINUSE) {
        result = absl::FailedPreconditionError(absl::StrCat(
            key, " ", address, ": port ", port,
            " is already in use by another process (another gyre dev or Gyre server?); "
            "stop it or choose another port with --",
            key));
      } else if (error == EACCES) {
        result = absl::PermissionDeniedError(
            absl::StrCat(key, " ", address, ": not permitted to listen on port ", port,
                         " (ports below 1024 need privileges); choose another port with --", key));
      }
    }
    close(fd);
  }
  freeaddrinfo(found);
  return result;
}

}  // namespace gyre::server
