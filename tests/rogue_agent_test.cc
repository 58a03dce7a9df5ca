// Rogue agents and many streams: an agent id belongs to one live stream, an agent touches only what
// was leased to it, and memory follows what is live.
#include <cstdint>
#include <limits>

#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// A Connect session that sends one Register built by the test and reports
// how the orchestrator answered: the Registered reply, or the status the
// stream ended with. Stays open (silent) until destroyed or Finish.
class RawAgentSession {
 public:
  RawAgentSession(const std::string& address, const v1::Register& registration,
                  absl::Duration deadline = absl::Seconds(30))
      : stub_(v1::AgentService::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    stream_ = stub_->Connect(&context_);
    v1::AgentMessage hello;
    *hello.mutable_register_() = registration;
    sent_ = stream_->Write(hello);
  }
  ~RawAgentSession() {
    if (!finished_) {
      context_.TryCancel();
      stream_->Finish();
    }
  }

  // The orchestrator's next message; none once the stream ended.
  std::optional<v1::OrchestratorMessage> Next() {
    if (!early_.empty()) {
      v1::OrchestratorMessage first = std::move(early_.front());
      early_.erase(early_.begin());
      return first;
    }
    v1::OrchestratorMessage message;
    if (!stream_->Read(&message)) return std::nullopt;
    return message;
  }
  bool Send(const v1::AgentMessage& message) { return stream_->Write(message); }
  // Reads to the end of the stream; its status.
  grpc::Status Finish() {
    v1::OrchestratorMessage ignored;
    while (stream_->Read(&ignored)) {
    }
    finished_ = true;
    return stream_->Finish();
  }
  // Whether the registration was accepted (the first message is Registered);
  // otherwise the stream's final status is in `*refused`.
  // What the orchestrator sends while registering (cancels, assignments)
  // may come before the Registered reply: kept for Next.
  bool Registered(grpc::Status* refused) {
    for (v1::OrchestratorMessage message; stream_->Read(&message);) {
      if (message.has_registered()) return true;
      early_.push_back(std::move(message));
    }
    finished_ = true;
    *refused = stream_->Finish();
    return false;
  }

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::OrchestratorMessage>> stream_;
  bool sent_ = false;
  bool finished_ = false;
  std::vector<v1::OrchestratorMessage> early_;
};

v1::Register Registration(const std::string& id,
                          const std::vector<std::string>& queues = {"default"}) {
  v1::Register registration;
  registration.set_agent_id(id);
  registration.set_slots(1);
  registration.set_initial_credit(1);
  for (const std::string& queue : queues) registration.add_queues(queue);
  return registration;
}

v1::AttemptRef Ref(const std::string& execution, const std::string& task, int64_t attempt) {
  v1::AttemptRef ref;
  ref.set_execution(execution);
  ref.set_task_id(task);
  ref.set_attempt(attempt);
  return ref;
}

class RogueAgentTest : public Cluster {
 protected:
  // The agents the orchestrator lists, by id.
  std::map<std::string, v1::AgentInfo> Agents() {
    grpc::ClientContext call;
    v1::ListAgentsResponse response;
    EXPECT_TRUE(stub_->ListAgents(&call, v1::ListAgentsRequest(), &response).ok());
    std::map<std::string, v1::AgentInfo> agents;
    for (const v1::AgentInfo& agent : response.agents()) {
      agents[agent.name().substr(std::string("agents/").size())] = agent;
    }
    return agents;
  }

  // Whether GetExecution answers within `bound` (the engine is not stalled).
  bool Responsive(const std::string& execution, absl::Duration bound = absl::Seconds(5)) {
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + bound));
    v1::GetExecutionRequest request;
    request.set_name(execution);
    v1::Execution reply;
    return stub_->GetExecution(&call, request, &reply).ok();
  }

  // Waits until the (restarted) orchestrator answers on the test's channel.
  // The first call may still go to the old connection, reset by the kill.
  void AwaitServing() {
    grpc::Status status;
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    do {
      grpc::ClientContext call;
      call.set_wait_for_ready(true);
      call.set_deadline(absl::ToChronoTime(deadline));
      v1::ListAgentsResponse response;
      status = stub_->ListAgents(&call, v1::ListAgentsRequest(), &response);
    } while (!status.ok() && absl::Now() < deadline);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  // Polls GetExecution (no stream) until `execution` is final; its state.
  v1::ExecutionState PollFinal(const std::string& execution, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    v1::Execution reply;
    while (absl::Now() < deadline) {
      grpc::ClientContext call;
      v1::GetExecutionRequest request;
      request.set_name(execution);
      if (stub_->GetExecution(&call, request, &reply).ok() &&
          (reply.state() == v1::EXECUTION_SUCCEEDED || reply.state() == v1::EXECUTION_FAILED ||
           reply.state() == v1::EXECUTION_CANCELLED)) {
        return reply.state();
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return reply.state();
  }

  // Kill -9 and restart: the recovered orchestrator finishes `execution`
  // (SUCCEEDED) with the agents still running.
  void CrashAndRecover(const std::string& yaml) {
    RestartOrchestrator(SIGKILL);
    AwaitServing();
    const std::string after = Start(yaml);
    EXPECT_EQ(Wait(after), v1::EXECUTION_SUCCEEDED);
  }
};

TEST_F(RogueAgentTest, AnImpostorWithALiveAgentsIdIsRefusedAndTheRealAgentKeepsItsWork) {
  // A stable id, as a StatefulSet pod's agent would have.
  const std::string config = root_ + "/real-agent.yaml";
  std::ofstream(config) << "id: real-agent\n";
  StartAgent("real", 2, {"--config=" + config});
  const std::string exec = Start(
      "name: held\ntasks:\n"
      "  - {id: slow, command: ['sh', '-c', 'sleep 2']}\n");
  ASSERT_TRUE(AwaitTaskState(exec, "slow", v1::TASK_RUNNING));
  // The impostor: same id, its own stream, claiming nothing.
  RawAgentSession impostor(address_, Registration("real-agent"));
  grpc::Status refused;
  EXPECT_FALSE(impostor.Registered(&refused)) << "a live agent's id was taken over";
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "real-agent")) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "connected on another stream since"))
      << refused.error_message();
  // The real agent kept its lease (no second attempt) and gets new work.
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  const v1::TaskRun slow = Task(exec, "slow");
  ASSERT_EQ(slow.attempts_size(), 1) << slow.DebugString();
  EXPECT_EQ(slow.attempts(0).agent(), "agents/real-agent");
  const std::string more = Start("name: more\ntasks:\n  - {id: t, command: ['true']}\n");
  EXPECT_EQ(Wait(more), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Task(more, "t").attempts(0).agent(), "agents/real-agent");
  EXPECT_EQ(Agents()["real-agent"].state(), v1::AgentInfo::CONNECTED);
  CrashAndRecover("name: after\ntasks:\n  - {id: t, command: ['true']}\n");
}

TEST_F(RogueAgentTest, AStreamSilentPastTwoHeartbeatsIsToldAndReplaced) {
  agent_killed_ = true;  // the hand-driven sessions fall silent and are declared dead
  RawAgentSession first(address_, Registration("cut-off"));
  grpc::Status status;
  ASSERT_TRUE(first.Registered(&status)) << status.error_message();
  // No heartbeat for 5 intervals (200 ms each; the rule counts two, and at
  // least 500 ms): a half-open connection, as after a network cut. Still
  // within the lease timeout (1.5 s).
  absl::SleepFor(absl::Milliseconds(1000));
  RawAgentSession second(address_, Registration("cut-off"));
  ASSERT_TRUE(second.Registered(&status))
      << "the real agent was locked out: " << status.error_message();
  // The old stream is told why, then closed.
  bool told = false;
  for (std::optional<v1::OrchestratorMessage> message = first.Next(); message.has_value();
       message = first.Next()) {
    if (message->has_shutdown()) {
      told = absl::StrContains(message->shutdown().reason(), "registered again");
    }
  }
  EXPECT_TRUE(told);
  // The new session gets work.
  const std::string exec = Start("name: taken\ntasks:\n  - {id: t, builtin: noop}\n");
  bool assigned = false;
  for (std::optional<v1::OrchestratorMessage> message = second.Next(); message.has_value();
       message = second.Next()) {
    if (message->has_assignment()) {
      assigned = message->assignment().tasks_size() == 1 &&
                 message->assignment().tasks(0).ref().execution() == exec;
      break;
    }
  }
  EXPECT_TRUE(assigned);
  StartAgent("worker", 2);
  CrashAndRecover("name: after\ntasks:\n  - {id: t, command: ['true']}\n");
}

TEST_F(RogueAgentTest, RegisterRunningCannotMoveAnotherAgentsAttemptNumbers) {
  agent_killed_ = true;  // the rogue sessions go silent
  // Nobody serves "elsewhere" yet: the task waits READY at attempt 0.
  const std::string exec =
      Start("name: target\ntasks:\n  - {id: t, queue: elsewhere, command: ['true']}\n");
  ASSERT_TRUE(AwaitTaskState(exec, "t", v1::TASK_READY));
  // The largest attempt number: refused outright (the next lease would
  // have overflowed to -2^63).
  {
    v1::Register registration = Registration("rogue-max");
    *registration.add_running() = Ref(exec, "t", std::numeric_limits<int64_t>::max());
    RawAgentSession rogue(address_, registration);
    grpc::Status refused;
    EXPECT_FALSE(rogue.Registered(&refused));
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << refused.error_message();
    EXPECT_TRUE(absl::StrContains(refused.error_message(), "out of range"))
        << refused.error_message();
  }
  // Plausible numbers for a task this agent was never leased, on a queue it
  // does not serve: it is only told to cancel them.
  for (int64_t attempt : {1, 2, 1000}) {
    v1::Register registration = Registration(absl::StrCat("rogue-", attempt));
    *registration.add_running() = Ref(exec, "t", attempt);
    RawAgentSession rogue(address_, registration);
    grpc::Status status;
    ASSERT_TRUE(rogue.Registered(&status)) << status.error_message();
    std::optional<v1::OrchestratorMessage> cancel = rogue.Next();
    ASSERT_TRUE(cancel.has_value());
    EXPECT_TRUE(cancel->has_cancel()) << cancel->DebugString();
  }
  EXPECT_EQ(Task(exec, "t").attempts_size(), 0) << Task(exec, "t").DebugString();
  StartAgent("served", 1, {"--queues=elsewhere"});
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  const v1::TaskRun run = Task(exec, "t");
  ASSERT_EQ(run.attempts_size(), 1) << run.DebugString();
  EXPECT_EQ(run.attempts(0).attempt(), 1) << "the next attempt is one more than before";
  RestartOrchestrator(SIGKILL);
  AwaitServing();
  EXPECT_EQ(Task(exec, "t").attempts(0).attempt(), 1);
  const std::string after =
      Start("name: after\ntasks:\n  - {id: t, queue: elsewhere, command: ['true']}\n");
  EXPECT_EQ(Wait(after), v1::EXECUTION_SUCCEEDED);
}

TEST_F(RogueAgentTest, ALogChunkForAnAttemptNotLeasedToTheAgentNeverReachesAWatcher) {
  agent_killed_ = true;  // the rogue session goes silent
  StartAgent("real", 1);
  const std::string exec = Start(
      "name: logged\ntasks:\n"
      "  - {id: t, command: ['sh', '-c', 'sleep 1; echo genuine; sleep 1']}\n");
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  v1::WatchRequest request;
  request.set_execution(exec);
  request.set_include_logs(true);
  auto reader = stub_->Watch(&call, request);
  ASSERT_TRUE(AwaitTaskState(exec, "t", v1::TASK_RUNNING));
  RawAgentSession rogue(address_, Registration("rogue"));
  grpc::Status status;
  ASSERT_TRUE(rogue.Registered(&status)) << status.error_message();
  for (int64_t attempt : {0, 1, 2}) {
    v1::AgentMessage chunk;
    *chunk.mutable_log_chunk()->mutable_ref() = Ref(exec, "t", attempt);
    chunk.mutable_log_chunk()->mutable_chunk()->set_stream(v1::LogChunk::STDOUT);
    chunk.mutable_log_chunk()->mutable_chunk()->set_data("INJECTED\n");
    rogue.Send(chunk);
  }
  std::string seen;
  for (v1::Event event; reader->Read(&event);) {
    if (event.type() == v1::Event::TASK_LOG) absl::StrAppend(&seen, event.log().chunk().data());
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(absl::StrContains(seen, "genuine")) << "the real agent's output flows: " << seen;
  EXPECT_FALSE(absl::StrContains(seen, "INJECTED")) << seen;
  EXPECT_FALSE(absl::StrContains(Logs(exec, "t"), "INJECTED"));
  CrashAndRecover("name: after\ntasks:\n  - {id: t, command: ['true']}\n");
}

TEST_F(RogueAgentTest, InvalidAgentIdsAndLabelsAreRefused) {
  const std::string long_value(64, 'v');
  struct Case {
    v1::Register registration;
    std::string expected;
  };
  std::vector<Case> cases;
  cases.push_back({Registration("a/b"), "invalid agent_id"});
  cases.push_back({Registration("agents/a/b"), "invalid agent_id"});
  cases.push_back({Registration("Upper"), "invalid agent_id"});
  cases.push_back({Registration(std::string(64, 'a')), "invalid agent_id"});
  cases.push_back({Registration(""), "invalid agent_id"});
  {
    v1::Register registration = Registration("labelled");
    (*registration.mutable_labels())["zone"] = long_value;
    cases.push_back({registration, "label"});
  }
  {
    v1::Register registration = Registration("labelled");
    (*registration.mutable_labels())[std::string(64, 'k')] = "v";
    cases.push_back({registration, "label"});
  }
  {
    v1::Register registration = Registration("labelled");
    for (int i = 0; i < 65; ++i) (*registration.mutable_labels())[absl::StrCat("k", i)] = "v";
    cases.push_back({registration, "labels; at most 64"});
  }
  for (Case& c : cases) {
    RawAgentSession session(address_, c.registration);
    grpc::Status refused;
    EXPECT_FALSE(session.Registered(&refused)) << c.registration.agent_id();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << refused.error_message();
    EXPECT_TRUE(absl::StrContains(refused.error_message(), c.expected)) << refused.error_message();
  }
  const std::map<std::string, v1::AgentInfo> agents = Agents();
  EXPECT_TRUE(agents.empty()) << "refused registrations left agents behind";
  StartAgent("fine", 1);
  CrashAndRecover("name: after\ntasks:\n  - {id: t, command: ['true']}\n");
}

TEST_F(RogueAgentTest, QueueNamesAreBoundedAndForgottenWhenNobodyUsesThem) {
  agent_killed_ = true;  // the hand-driven sessions are declared dead
  StartAgent("real", 2);
  const std::string exec = Start("name: running\ntasks:\n  - {id: t, command: ['true']}\n");
  // 100,000 queue names in one Register: refused at once, nothing created.
  {
    std::vector<std::string> many;
    many.reserve(100000);
    for (int i = 0; i < 100000; ++i) many.push_back(absl::StrCat("q", i));
    RawAgentSession flood(address_, Registration("flood", many));
    grpc::Status refused;
    EXPECT_FALSE(flood.Registered(&refused));
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << refused.error_message();
    EXPECT_TRUE(absl::StrContains(refused.error_message(), "at most 64"))
        << refused.error_message();
  }
  EXPECT_TRUE(Responsive(exec));
  // 64 names per agent, new ones each time: past 4096 names in total the
  // next registration is refused, with why.
  std::vector<std::unique_ptr<RawAgentSession>> sessions;
  grpc::Status refused;
  int accepted = 0;
  for (int agent = 0; agent < 70; ++agent) {
    std::vector<std::string> names;
    for (int i = 0; i < 64; ++i) names.push_back(absl::StrCat("a", agent, "-q", i));
    auto session = std::make_unique<RawAgentSession>(
        address_, Registration(absl::StrCat("many-", agent), names));
    if (!session->Registered(&refused)) break;
    ++accepted;
    sessions.push_back(std::move(session));
  }
  EXPECT_EQ(accepted, 63) << "63 agents x 64 names + default fit in 4096";
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "4096")) << refused.error_message();
  EXPECT_TRUE(Responsive(exec));
  EXPECT_GT(Metric("gyre_queue_depth{worker_type=\"a0-q0\"}"), -1) << "served: exported";
  // Once those agents are gone (declared dead after the lease timeout), the
  // names they alone made known are forgotten, series included.
  sessions.clear();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline && Agents().size() > 1) absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(Agents().size(), 1u);
  EXPECT_EQ(Metric("gyre_queue_depth{worker_type=\"a0-q0\"}"), -1) << "series dropped";
  grpc::ClientContext call;
  v1::ListQueuesResponse queues;
  ASSERT_TRUE(stub_->ListQueues(&call, v1::ListQueuesRequest(), &queues).ok());
  EXPECT_EQ(queues.queues_size(), 1) << "only \"default\" is still used";
  std::vector<std::string> names;
  for (int i = 0; i < 64; ++i) names.push_back(absl::StrCat("again-q", i));
  RawAgentSession again(address_, Registration("again", names));
  EXPECT_TRUE(again.Registered(&refused)) << refused.error_message();
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  CrashAndRecover("name: after\ntasks:\n  - {id: t, command: ['true']}\n");
}

TEST_F(RogueAgentTest, NonReadingWatchStreamsAreBoundedAndDoNotStallARun) {
  StartAgent("real", 8);
  // Watchers of all executions that never read, up to the cap; one more is
  // refused with why.
  struct OpenWatch {
    grpc::ClientContext call;
    std::unique_ptr<grpc::ClientReader<v1::Event>> reader;
  };
  std::vector<std::unique_ptr<OpenWatch>> watches;
  constexpr int kCap = 1024;
  v1::WatchRequest all;  // execution "": every execution
  for (int i = 0; i < kCap; ++i) {
    auto watch = std::make_unique<OpenWatch>();
    watch->reader = stub_->Watch(&watch->call, all);
    watches.push_back(std::move(watch));
  }
  // The streams are open once the orchestrator answers a later call (calls
  // on one channel are served in order of arrival, near enough): probe
  // until one is refused. A loaded machine (tests run side by side) may
  // take tens of seconds to open 1024 streams, each probe up to 5 s.
  grpc::Status refused;
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  while (absl::Now() < deadline) {
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    auto probe = stub_->Watch(&call, all);
    v1::Event event;
    probe->Read(&event);  // nothing happens now: ends at the deadline, or refused
    refused = probe->Finish();
    if (refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) break;
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "1024")) << refused.error_message();
  // A 4,000-task run goes through: each event is built once, and each of
  // the watchers that stopped reading is cut off once it holds 4096
  // unread. (Followed by polling: every stream is taken.)
  std::string yaml = "name: wide\ntasks:\n";
  for (int i = 0; i < 4000; ++i) absl::StrAppend(&yaml, "  - {id: t", i, ", builtin: noop}\n");
  const std::string exec = Start(yaml);
  EXPECT_EQ(PollFinal(exec, absl::Seconds(120)), v1::EXECUTION_SUCCEEDED);
  EXPECT_TRUE(Responsive(exec));
  // The watchers that fell behind were cut off, freeing their places: new
  // streams are accepted again (an accepted one sees nothing and ends at
  // its deadline; a refused one ends at once).
  std::vector<std::unique_ptr<OpenWatch>> probes;
  for (int i = 0; i < 10; ++i) {
    auto probe = std::make_unique<OpenWatch>();
    probe->call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
    probe->reader = stub_->Watch(&probe->call, all);
    probes.push_back(std::move(probe));
  }
  int accepted = 0;
  for (auto& probe : probes) {
    accepted += probe->reader->Finish().error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  }
  EXPECT_EQ(accepted, 10) << "the non-reading watchers still hold their places";
  for (auto& watch : watches) watch->call.TryCancel();
  for (auto& watch : watches) watch->reader->Finish();
  CrashAndRecover("name: after\ntasks:\n  - {id: t, command: ['true']}\n");
}

}  // namespace
}  // namespace gyre::e2e
