#ifndef GYRE_SERVICES_AGENT_ORCHESTRATOR_LINK_H_
#define GYRE_SERVICES_AGENT_ORCHESTRATOR_LINK_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gyre/v1/agent_service.pb.h"
#include "libs/security/tls_config.h"

namespace gyre::agent {

// One session between the agent and the orchestrator: an ordered stream of
// AgentMessages out (the first one registers) and OrchestratorMessages in.
// A separate agent process speaks it over gRPC; the agent embedded in
// `gyre dev` hands the messages to the engine in the same process, without
// serializing them.
//
// Thread-safety: one thread writes, one thread reads; Cancel may be called
// from any thread.
class OrchestratorSession {
 public:
  virtual ~OrchestratorSession() = default;
  // Sends one message; false once the session is broken.
  virtual bool Write(const gyre::v1::AgentMessage& message) = 0;
  // Blocks for the next message; false once the session has ended.
  virtual bool Read(gyre::v1::OrchestratorMessage* message) = 0;
  // Ends the session: a blocked Read returns false, later writes fail.
  virtual void Cancel() = 0;
  // Called once, after Read returned false and writing stopped: why the
  // session ended (CANCELLED after Cancel).
  virtual absl::Status Finish() = 0;
};

// Opens sessions with the orchestrator (a new one after each break).
class OrchestratorLink {
 public:
  virtual ~OrchestratorLink() = default;
  virtual std::unique_ptr<OrchestratorSession> Open() = 0;
};

// A channel to the orchestrator at `address` that accepts the largest
// message the orchestrator sends (libs/common/limits.h), secured by `tls`
// (the agent's own TLS settings: its certificate for mutual TLS).
// `authority` ("name:port", optional): the name `address` was resolved
// from, presented as the call authority and checked against the server's
// certificate (an address dialed directly has no name of its own).
absl::StatusOr<std::shared_ptr<grpc::Channel>> NewOrchestratorChannel(
    const std::string& address, const security::TlsConfig& tls, const std::string& authority = "");

// Sessions as gyre.v1.AgentService.Connect streams over `channel`, each
// presenting `join_token` (none when empty) as metadata.
std::unique_ptr<OrchestratorLink> NewGrpcOrchestratorLink(
    const std::shared_ptr<grpc::Channel>& channel, std::string join_token = "");

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_ORCHESTRATOR_LINK_H_
