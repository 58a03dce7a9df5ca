// The agent's handling of what the orchestrator sends (issue 23): arbitrary
// bytes as a sequence of gyre.v1.OrchestratorMessage (Registered,
// Assignment, Cancel, ResultAck, Shutdown), each handed to
// AgentClient::HandleMessage, the code the agent's session reader runs, of
// a fresh agent on a fake clock that has no session open (what it queues
// for the orchestrator waits for one).
//
// So that an input does not spawn processes, the agent is configured to run
// tasks as a user that does not exist: every process task goes through the
// assignment's handling (environment, work directory, limits) and is
// refused before anything runs, as a misconfigured agent refuses it.
// Built-in no-ops complete at once. A built-in sleep is raised to at least
// an hour (the clock never moves) and every assigned attempt is cancelled
// after the session, so each ends by a cancel on this thread: nothing runs
// on another thread, and an input replays the same way every time.
//
// Input: records of [2-byte little-endian length][that many bytes]; a record
// that does not parse as an OrchestratorMessage is skipped.
// fuzz/corpus/orchestrator_message holds sessions as the orchestrator
// speaks them, written by fuzz/seeds/orchestrator_message.sh.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "gyre/v1/agent_service.pb.h"
#include "libs/common/clock.h"
#include "libs/logging/logger.h"
#include "services/agent/agent_client.h"
#include "services/agent/agent_config.h"

namespace {

namespace v1 = ::gyre::v1;
using ::gyre::agent::AgentClient;
using ::gyre::agent::AgentConfig;

// Messages per input: a session far longer than the seeds.
constexpr int kMaxMessages = 64;
constexpr int64_t kMinSleepSeconds = 3600;

AgentConfig Config() {
  AgentConfig config;
  config.id = "fuzz-agent";
  config.slots = 4;
  config.cgroups = false;
  config.run_as_user = "gyre-fuzz-no-such-user";
  config.work_dir = "/nonexistent/gyre-fuzz";
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    gyre::logging::SetLevel(gyre::logging::Level::kError);
    // A mutated string field is often not UTF-8: protobuf logs each one it
    // parses (to stderr, a write per message), the parse itself is the test.
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  gyre::FakeClock clock;
  AgentClient agent(Config(), /*link=*/nullptr, &clock);
  std::vector<v1::AttemptRef> assigned;
  size_t at = 0;
  for (int messages = 0; messages < kMaxMessages && at + 2 <= size; ++messages) {
    const size_t length = static_cast<size_t>(data[at]) | (static_cast<size_t>(data[at + 1]) << 8);
    at += 2;
    if (length > size - at) break;
    v1::OrchestratorMessage message;
    const bool parsed = message.ParseFromArray(data + at, static_cast<int>(length));
    at += length;
    if (!parsed) continue;
    if (message.has_assignment()) {
      for (v1::TaskAssignment& task : *message.mutable_assignment()->mutable_tasks()) {
        assigned.push_back(task.ref());
        if (task.builtin().kind() == v1::BuiltinExecutor::SLEEP &&
            task.builtin().duration().seconds() < kMinSleepSeconds) {
          task.mutable_builtin()->mutable_duration()->set_seconds(kMinSleepSeconds);
        }
      }
    }
    if (!agent.HandleMessage(message)) break;  // Shutdown: the session ends
  }
  // Whatever still runs ends here, on this thread.
  for (const v1::AttemptRef& ref : assigned) {
    v1::OrchestratorMessage cancel;
    *cancel.mutable_cancel()->mutable_ref() = ref;
    agent.HandleMessage(cancel);
  }
  return 0;
}
