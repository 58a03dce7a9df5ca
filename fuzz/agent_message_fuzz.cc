// The orchestrator's handling of what an agent sends (issue 23): arbitrary
// bytes as a sequence of gyre.v1.AgentMessage, each handed to AgentSession
// (the protocol of AgentService.Connect: the first must register, the rest
// go to WorkflowEngine::HandleAgentMessage) of a fresh in-memory engine that
// runs one execution (a retried task, an evaluator, a fan-in) on a fake
// clock. Checks beyond "no crash, leak, UB or hang": the engine's own
// invariant that dispatch never stalls (DispatchStallForTest) holds after the
// session.
//
// Input: records of [2-byte little-endian length][that many bytes]; a record
// that does not parse as an AgentMessage is skipped. An AttemptRef naming
// the execution "executions/FUZZ" is rewritten to the execution the engine
// started (its id comes from the clock), so seeds can report results of real
// attempts: fuzz/corpus/agent_message holds serialized sessions of a real
// agent, written by fuzz/seeds/agent_message.sh.
#include <cstddef>
#include <cstdint>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "gyre/v1/agent_service.pb.h"
#include "libs/common/clock.h"
#include "libs/logging/logger.h"
#include "services/orchestrator/agent_session.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/workflow_engine.h"

namespace {

namespace v1 = ::gyre::v1;
using ::gyre::orchestrator::AgentSession;
using ::gyre::orchestrator::WorkflowEngine;
namespace testing = ::gyre::orchestrator::testing;

constexpr char kPlaceholder[] = "executions/FUZZ";
// Messages per input: a session far longer than the seeds.
constexpr int kMaxMessages = 64;

v1::WorkflowDefinition Definition() {
  v1::TaskSpec flaky = testing::Task("flaky", {}, {"OUT"});
  flaky.mutable_retry()->set_max_retries(2);
  v1::TaskSpec judge = testing::Task("judge", {"flaky"});
  judge.set_evaluator(true);
  return testing::Declaring(
      testing::Workflow("fuzz", {testing::Task("a"), std::move(flaky), std::move(judge),
                                 testing::Task("b", {"judge"}), testing::Task("c", {"judge"}),
                                 testing::Task("d", {"a", "b", "c"})}),
      {"OUT"});
}

void Rewrite(v1::AttemptRef* ref, const std::string& execution) {
  if (ref->execution() == kPlaceholder) ref->set_execution(execution);
}

// Every AttemptRef a message may carry.
void RewriteRefs(v1::AgentMessage* message, const std::string& execution) {
  switch (message->kind_case()) {
    case v1::AgentMessage::kRegister:
      for (v1::AttemptRef& ref : *message->mutable_register_()->mutable_running()) {
        Rewrite(&ref, execution);
      }
      break;
    case v1::AgentMessage::kHeartbeat:
      for (v1::AttemptRef& ref : *message->mutable_heartbeat()->mutable_running()) {
        Rewrite(&ref, execution);
      }
      break;
    case v1::AgentMessage::kTaskStarted:
      Rewrite(message->mutable_task_started()->mutable_ref(), execution);
      break;
    case v1::AgentMessage::kTaskResult:
      Rewrite(message->mutable_task_result()->mutable_ref(), execution);
      break;
    case v1::AgentMessage::kLogChunk:
      Rewrite(message->mutable_log_chunk()->mutable_ref(), execution);
      break;
    case v1::AgentMessage::kTaskResults:
      for (v1::TaskResult& result : *message->mutable_task_results()->mutable_results()) {
        Rewrite(result.mutable_ref(), execution);
      }
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Every input starts, registers and ends a session: at info that is four
  // log lines an input, most of the time spent.
  static const bool quiet = [] {
    gyre::logging::SetLevel(gyre::logging::Level::kError);
    // A mutated string field is often not UTF-8: protobuf logs each one it
    // parses (to stderr, a write per message), the parse itself is the test.
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  gyre::FakeClock clock;
  WorkflowEngine::Options options;
  options.clock = &clock;
  options.lease_timeout = absl::Seconds(30);
  WorkflowEngine engine(options);
  // Built once: the request is the same for every input.
  static const v1::StartExecutionRequest* const request =
      new v1::StartExecutionRequest(testing::StartRequest(Definition()));
  absl::StatusOr<v1::Execution> execution = engine.StartExecution(*request);
  if (!execution.ok()) __builtin_trap();  // the fixed workflow must start
  {
    AgentSession session(&engine);
    size_t at = 0;
    for (int messages = 0; messages < kMaxMessages && at + 2 <= size; ++messages) {
      const size_t length =
          static_cast<size_t>(data[at]) | (static_cast<size_t>(data[at + 1]) << 8);
      at += 2;
      if (length > size - at) break;
      v1::AgentMessage message;
      const bool parsed = message.ParseFromArray(data + at, static_cast<int>(length));
      at += length;
      if (!parsed) continue;
      RewriteRefs(&message, execution->name());
      if (!session.Receive(message).ok()) break;  // the session ended: as the stream would
      v1::OrchestratorMessage out;
      while (session.TakeOutgoing(&out) == AgentSession::Outgoing::kMessage) {
      }
    }
    session.End();
  }
  // A lost agent's attempts go back to the queue; nothing may stall.
  clock.Advance(absl::Seconds(31));
  engine.ExpireLeases(clock.Now());
  if (!engine.DispatchStallForTest().empty()) __builtin_trap();
  return 0;
}
