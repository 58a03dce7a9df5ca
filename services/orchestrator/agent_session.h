#ifndef GYRE_SERVICES_ORCHESTRATOR_AGENT_SESSION_H_
#define GYRE_SERVICES_ORCHESTRATOR_AGENT_SESSION_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/agent_service.pb.h"

namespace gyre::orchestrator {

class WorkflowEngine;
class SessionOutbox;

// One agent's session with the engine: the protocol of
// gyre.v1.AgentService.Connect, written once for whatever carries it (the
// gRPC stream of AgentServiceImpl, or `gyre dev`'s in-process link, which
// hands protobuf objects over without serializing them). The first message
// must register; every later one goes to the engine; an error ends the
// session (the transport closes with it, mapped once by ToGrpcStatus) —
// except a result the engine refuses because another orchestrator owns its
// execution's shard, which is answered with ResultRefused; the
// agent is disconnected from the engine exactly once, whichever side ends.
//
// What the engine sends the agent waits in the session's outbox, in order,
// until the transport takes it: a transport that writes asynchronously
// (one write in flight) calls TakeOutgoing whenever it may write, and is
// woken by `wake` when a message arrives while it was idle; a transport
// with a thread of its own blocks in WaitOutgoing. The engine holds the
// outbox, possibly past the session's end (an acknowledgement waits for
// durability); once the session ended, what it sends is dropped.
//
// Thread-safety: Receive from one thread at a time (the transport's
// reader), TakeOutgoing or WaitOutgoing from one at a time (its writer),
// End and status from any.
class AgentSession {
 public:
  // Runs when a message waits to go out after TakeOutgoing answered kIdle,
  // and when the session must end after TakeOutgoing answered kIdle. May run
  // on any thread, under the engine's lock: it must not block nor call the
  // engine; it may call TakeOutgoing. Never runs once End returned.
  using Wake = absl::AnyInvocable<void()>;

  explicit AgentSession(WorkflowEngine* engine, Wake wake = nullptr);
  // Ends the session if the transport did not.
  ~AgentSession();
  AgentSession(const AgentSession&) = delete;
  AgentSession& operator=(const AgentSession&) = delete;

  // Hands the agent's next message to the engine (the first must be
  // Register). An error (a refused registration, a protocol violation, a
  // session already ended) ends the session; the transport closes with it.
  absl::Status Receive(const gyre::v1::AgentMessage& message);

  enum class Outgoing {
    kMessage,  // `*message` is the next to write
    kIdle,     // none now: `wake` runs when there is one
    kEnd,      // nothing more goes out: close the stream with status()
  };
  // For asynchronous transports: what to write next. kEnd once the session
  // ended, or once the agent's id was taken over by a newer stream and the
  // Shutdown that tells it so was taken.
  Outgoing TakeOutgoing(gyre::v1::OrchestratorMessage* message);
  // For transports with a writer thread: blocks for the next message; false
  // once nothing more goes out (as kEnd above).
  bool WaitOutgoing(gyre::v1::OrchestratorMessage* message);

  // Ends the session: the agent is disconnected (the first time), unsent
  // messages are dropped, WaitOutgoing returns. `why` becomes status() unless
  // an error came first.
  void End(absl::Status why = absl::OkStatus());

  // Why the session ended (or is ending): its first error, else OK.
  absl::Status status() ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  absl::Status Register(const gyre::v1::AgentMessage& message);
  // The engine refused `message` (a result or a batch of them) as
  // `refused`, a ShardNotOwnedError: each result of an execution this
  // orchestrator does not own is answered with ResultRefused (never
  // acknowledged), the others are recorded, and the session goes on.
  absl::Status RefuseResults(const gyre::v1::AgentMessage& message, const absl::Status& refused);
  // Ends with `error` and logs it: the agent broke the protocol or was refused.
  absl::Status Fail(absl::Status error, const std::string& agent_id);

  WorkflowEngine* const engine_;
  const std::shared_ptr<SessionOutbox> outbox_;
  // Written once by the first Receive, before registered_ is set.
  std::string agent_id_;
  // The fast path of Receive reads these without the mutex.
  std::atomic<bool> registered_{false};
  std::atomic<bool> ended_{false};
  absl::Mutex mutex_;  // orders End with a registration in progress
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_AGENT_SESSION_H_
