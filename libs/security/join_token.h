#ifndef GYRE_LIBS_SECURITY_JOIN_TOKEN_H_
#define GYRE_LIBS_SECURITY_JOIN_TOKEN_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::security {

// The gRPC metadata key an agent sends its join token under, on the
// Connect stream, before its Register.
inline constexpr absl::string_view kJoinTokenMetadataKey = "x-gyre-join-token";

// Tokens longer than this are refused unread (no hashing of a megabyte).
inline constexpr size_t kMaxJoinTokenBytes = 1024;

// "sha256:<64 hex digits>" of `token`: what the orchestrator's config holds
// (`gyre hash-token` prints it). Join tokens are random secrets (`openssl
// rand -hex 32`), not passwords a person picks, so a fast hash suffices:
// guessing one is as hard as guessing the token; a slow hash (Argon2id)
// protects only low-entropy secrets.
std::string HashJoinToken(absl::string_view token);

// Checks an agent's join token against the configured hashes (several, so
// a new token can be rolled out before the old one is retired).
// Thread-safe (immutable after construction).
class JoinTokenVerifier {
 public:
  // `hashes` as HashJoinToken prints them; InvalidArgument names the entry
  // that is not one (the hashes are not secret).
  static absl::StatusOr<JoinTokenVerifier> FromHashes(const std::vector<std::string>& hashes);

  // No hashes configured: registration is open (`gyre dev`, tests).
  bool open() const { return digests_.empty(); }

  // OK when `token` is one of the configured tokens (or registration is
  // open); Unauthenticated when it is missing, PermissionDenied when it is
  // wrong. The message never contains the token.
  absl::Status Check(absl::string_view token) const;

 private:
  std::vector<std::array<unsigned char, 32>> digests_;
};

}  // namespace gyre::security

#endif  // GYRE_LIBS_SECURITY_JOIN_TOKEN_H_
