#ifndef GYRE_LIBS_TESTING_AGENT_SWARM_H_
#define GYRE_LIBS_TESTING_AGENT_SWARM_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gyre/v1/agent_service.grpc.pb.h"

namespace gyre::testing {

class SwarmAgent;

// Many lightweight agents in one process, for load tests and the 10,000
// agent benchmark: each has its own AgentService.Connect stream and id,
// registers one slot on one queue, heartbeats at the interval the
// orchestrator gives, and finishes every task it is assigned at once
// (SUCCEEDED, no process), granting its credit back. The streams are
// multiplexed over a few channels (one TCP connection each) with gRPC's
// callback client API, so the whole swarm runs on a few threads.
// Thread-safe.
class AgentSwarm {
 public:
  struct Options {
    std::string address;  // the orchestrator's gRPC address
    int agents = 100;
    int channels = 16;  // TCP connections the streams share
    std::string id_prefix = "swarm";
    std::string queue = "default";
  };

  // One assignment received: when, and for which execution.
  struct Receipt {
    std::string execution;
    absl::Time received;
  };

  explicit AgentSwarm(Options options);
  // Cancels every stream and waits until gRPC is done with each.
  ~AgentSwarm();
  AgentSwarm(const AgentSwarm&) = delete;
  AgentSwarm& operator=(const AgentSwarm&) = delete;

  // Opens every stream (at most `in_flight` registrations at once) and waits
  // up to `timeout` until all are registered; how many are.
  int Connect(absl::Duration timeout, int in_flight = 500);

  // Waits up to `timeout` until at least `results` results were sent; false
  // on timeout.
  bool AwaitResults(int64_t results, absl::Duration timeout);

  int registered();
  int64_t results_sent();
  // Heartbeats sent over all streams.
  int64_t heartbeats_sent();
  // What went wrong: streams that ended while the swarm ran (with their
  // status), Shutdown messages received, cancels. Empty when all went well.
  std::vector<std::string> Problems();
  // Every assignment received since the last call (moved out).
  std::vector<Receipt> TakeReceipts();

 private:
  friend class SwarmAgent;
  void HeartbeatLoop();

  const Options options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<gyre::v1::AgentService::Stub>> stubs_;
  std::vector<std::unique_ptr<SwarmAgent>> agents_;

  absl::Mutex mutex_;
  int started_ ABSL_GUARDED_BY(mutex_) = 0;  // streams opened
  int registered_ ABSL_GUARDED_BY(mutex_) = 0;
  int done_ ABSL_GUARDED_BY(mutex_) = 0;  // streams gRPC is done with
  int64_t results_sent_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t heartbeats_sent_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::string> problems_ ABSL_GUARDED_BY(mutex_);
  std::vector<Receipt> receipts_ ABSL_GUARDED_BY(mutex_);
  std::thread heartbeats_;
};

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_AGENT_SWARM_H_
