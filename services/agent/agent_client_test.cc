#include "services/agent/agent_client.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/common/clock.h"
#include "libs/testing/scratch_dir.h"

namespace gyre::agent {
namespace {

namespace v1 = ::gyre::v1;

// The orchestrator's side of the agent protocol, scripted by the test: it
// records what each session receives and delivers what the test queues.
class ScriptedLink : public OrchestratorLink {
 public:
  // What one session carried. Kept by the link after the agent has let
  // the session go. Guarded by the link's mutex_ (not annotated: the link
  // reaches it as sessions_[i]->...).
  struct Record {
    std::vector<v1::AgentMessage> written_;
    std::deque<v1::OrchestratorMessage> inbox_;
    bool ended_ = false;
  };

  class Session : public OrchestratorSession {
   public:
    Session(ScriptedLink* link, std::shared_ptr<Record> record)
        : link_(link), record_(std::move(record)) {}
    bool Write(const v1::AgentMessage& message) override {
      absl::MutexLock lock(&link_->mutex_);
      if (record_->ended_) return false;
      record_->written_.push_back(message);
      if (link_->auto_ack_) {
        uint64_t through = message.task_result().sequence();
        for (const v1::TaskResult& result : message.task_results().results()) {
          through = std::max(through, result.sequence());
        }
        if (through > 0) {
          v1::OrchestratorMessage ack;
          ack.mutable_result_ack()->set_through_sequence(through);
          record_->inbox_.push_back(std::move(ack));
        }
      }
      return true;
    }
    bool Read(v1::OrchestratorMessage* message) override {
      absl::MutexLock lock(&link_->mutex_);
      auto ready = [this]() { return record_->ended_ || !record_->inbox_.empty(); };
      link_->mutex_.Await(absl::Condition(&ready));
      // What was queued before the end is still delivered.
      if (record_->inbox_.empty()) return false;
      *message = std::move(record_->inbox_.front());
      record_->inbox_.pop_front();
      return true;
    }
    void Cancel() override {
      absl::MutexLock lock(&link_->mutex_);
      record_->ended_ = true;
    }
    absl::Status Finish() override { return absl::OkStatus(); }

   private:
    ScriptedLink* const link_;
    const std::shared_ptr<Record> record_;
  };

  explicit ScriptedLink(Clock* clock) : clock_(clock) {}

  std::unique_ptr<OrchestratorSession> Open() override {
    auto record = std::make_shared<Record>();
    auto session = std::make_unique<Session>(this, record);
    absl::MutexLock lock(&mutex_);
    sessions_.push_back(std::move(record));
    opened_at_.push_back(clock_->Now());
    return session;
  }

  // Acknowledges every result as it arrives, as the orchestrator does once
  // it has stored it.
  void set_auto_ack(bool auto_ack) {
    absl::MutexLock lock(&mutex_);
    auto_ack_ = auto_ack;
  }
  // Sessions opened so far.
  size_t sessions() {
    absl::MutexLock lock(&mutex_);
    return sessions_.size();
  }
  // When (on the agent's clock) session `index` was opened.
  absl::Time OpenedAt(size_t index) {
    absl::MutexLock lock(&mutex_);
    return opened_at_.at(index);
  }

  // Queues `message` for session `index`, once it is open.
  void Deliver(size_t index, v1::OrchestratorMessage message) {
    absl::MutexLock lock(&mutex_);
    WaitForSession(index);
    sessions_[index]->inbox_.push_back(std::move(message));
  }
  // Ends session `index` after what was queued for it.
  void End(size_t index) {
    absl::MutexLock lock(&mutex_);
    WaitForSession(index);
    sessions_[index]->ended_ = true;
  }
  // The registration that opened session `index`.
  v1::Register Registration(size_t index) {
    absl::MutexLock lock(&mutex_);
    WaitForSession(index);
    auto sent = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return !sessions_[index]->written_.empty();
    };
    mutex_.AwaitWithTimeout(absl::Condition(&sent), absl::Seconds(10));
    return sessions_[index]->written_.empty() ? v1::Register()
                                              : sessions_[index]->written_.front().register_();
  }
  // How many heartbeats session `index` has received once there are
  // `count` (or after `wait`).
  size_t Heartbeats(size_t index, size_t count, absl::Duration wait) {
    absl::MutexLock lock(&mutex_);
    WaitForSession(index);
    size_t heartbeats = 0;
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      heartbeats = 0;
      for (const v1::AgentMessage& message : sessions_[index]->written_) {
        heartbeats += message.has_heartbeat() ? 1 : 0;
      }
      return heartbeats >= count;
    };
    mutex_.AwaitWithTimeout(absl::Condition(&enough), wait);
    return heartbeats;
  }
  // The credit session `index` was granted (its registration's initial
  // credit and every Credit since) once it is at least `at_least` (or after
  // `wait`).
  int64_t Granted(size_t index, int64_t at_least, absl::Duration wait = absl::Seconds(10)) {
    absl::MutexLock lock(&mutex_);
    WaitForSession(index);
    int64_t granted = 0;
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      granted = 0;
      for (const v1::AgentMessage& message : sessions_[index]->written_) {
        granted += message.register_().initial_credit() + message.credit().tasks() +
                   message.task_results().credit();
      }
      return granted >= at_least;
    };
    mutex_.AwaitWithTimeout(absl::Condition(&enough), wait);
    return granted;
  }
  // Whether session `index` has received `text` in a stdout log chunk.
  bool LogContains(size_t index, const std::string& text) {
    absl::MutexLock lock(&mutex_);
    if (sessions_.size() <= index) return false;
    for (const v1::AgentMessage& message : sessions_[index]->written_) {
      if (message.has_log_chunk() &&
          message.log_chunk().chunk().data().find(text) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
  // Everything session `index` has received so far, in order.
  std::vector<v1::AgentMessage> Written(size_t index) {
    absl::MutexLock lock(&mutex_);
    WaitForSession(index);
    return sessions_.size() > index ? sessions_[index]->written_ : std::vector<v1::AgentMessage>();
  }
  // The results session `index` has received once there are `count` (or
  // after `wait`).
  std::vector<v1::TaskResult> Results(size_t index, size_t count,
                                      absl::Duration wait = absl::Seconds(10)) {
    absl::MutexLock lock(&mutex_);
    WaitForSession(index);
    std::vector<v1::TaskResult> results;
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      results.clear();
      for (const v1::AgentMessage& message : sessions_[index]->written_) {
        if (message.has_task_result()) results.push_back(message.task_result());
        for (const v1::TaskResult& result : message.task_results().results()) {
          results.push_back(result);
        }
      }
      return results.size() >= count;
    };
    mutex_.AwaitWithTimeout(absl::Condition(&enough), wait);
    return results;
  }

 private:
  void WaitForSession(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    auto open = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return sessions_.size() > index; };
    mutex_.AwaitWithTimeout(absl::Condition(&open), absl::Seconds(10));
    ASSERT_GT(sessions_.size(), index) << "session " << index << " never opened";
  }

  Clock* const clock_;
  absl::Mutex mutex_;
  std::vector<std::shared_ptr<Record>> sessions_ ABSL_GUARDED_BY(mutex_);
  std::vector<absl::Time> opened_at_ ABSL_GUARDED_BY(mutex_);
  bool auto_ack_ ABSL_GUARDED_BY(mutex_) = false;
};

// An agent on a scripted link with a fake clock, started. Its working
// directory is a scratch directory, and it may run tasks as root (the
// tests may run as root). Tests take references to the parts they use.
struct ScriptedAgent {
  explicit ScriptedAgent(AgentConfig config = {})
      : agent(ForTests(std::move(config), scratch), link, &clock) {
    agent.Start();
  }
  static AgentConfig ForTests(AgentConfig config, const gyre::testing::ScratchDir& dir) {
    config.work_dir = dir.path();
    config.allow_root_tasks = true;
    return config;
  }

  gyre::testing::ScratchDir scratch{"gyre_agent_client_test"};
  FakeClock clock;
  std::shared_ptr<ScriptedLink> link = std::make_shared<ScriptedLink>(&clock);
  AgentClient agent;
};

v1::OrchestratorMessage Assign(const std::vector<std::string>& tasks) {
  v1::OrchestratorMessage message;
  for (const std::string& task : tasks) {
    v1::TaskAssignment* assigned = message.mutable_assignment()->add_tasks();
    assigned->mutable_ref()->set_execution("executions/e1");
    assigned->mutable_ref()->set_task_id(task);
    assigned->mutable_ref()->set_attempt(1);
    assigned->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
  }
  return message;
}

v1::OrchestratorMessage AssignCommand(const std::string& task, const std::string& script) {
  v1::OrchestratorMessage message;
  v1::TaskAssignment* assigned = message.mutable_assignment()->add_tasks();
  assigned->mutable_ref()->set_execution("executions/e1");
  assigned->mutable_ref()->set_task_id(task);
  assigned->mutable_ref()->set_attempt(1);
  assigned->add_command(script);
  assigned->set_shell(true);
  return message;
}

v1::OrchestratorMessage AssignSleep(const std::string& task, absl::Duration duration) {
  v1::OrchestratorMessage message = Assign({task});
  v1::BuiltinExecutor* builtin = message.mutable_assignment()->mutable_tasks(0)->mutable_builtin();
  builtin->set_kind(v1::BuiltinExecutor::SLEEP);
  builtin->mutable_duration()->set_seconds(absl::ToInt64Seconds(duration));
  return message;
}

v1::OrchestratorMessage CancelTask(const std::string& task) {
  v1::OrchestratorMessage message;
  message.mutable_cancel()->mutable_ref()->set_execution("executions/e1");
  message.mutable_cancel()->mutable_ref()->set_task_id(task);
  message.mutable_cancel()->mutable_ref()->set_attempt(1);
  return message;
}

v1::OrchestratorMessage AckThrough(uint64_t sequence) {
  v1::OrchestratorMessage message;
  message.mutable_result_ack()->set_through_sequence(sequence);
  return message;
}

TEST(AgentClientTest, ResultsAreNumberedAndOnlyUnacknowledgedOnesAreSentAgain) {
  AgentConfig config;
  config.slots = 8;
  ScriptedAgent scripted(config);
  FakeClock& clock = scripted.clock;
  std::shared_ptr<ScriptedLink>& link = scripted.link;

  link->Deliver(0, Assign({"a", "b", "c"}));
  const std::vector<v1::TaskResult> first = link->Results(0, 3);
  ASSERT_EQ(first.size(), 3u);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].sequence(), i + 1) << "numbered 1, 2, 3 in the order sent";
    EXPECT_EQ(first[i].outcome(), v1::ATTEMPT_SUCCEEDED);
  }

  // Results 1 and 2 are durable; the session breaks before 3 is.
  link->Deliver(0, AckThrough(first[1].sequence()));
  link->End(0);
  // The agent reconnects once its backoff has passed on the clock.
  ASSERT_TRUE(clock.AdvanceUntil([&] { return link->sessions() == 2; }, absl::Milliseconds(50)));
  const std::vector<v1::TaskResult> resent = link->Results(1, 1);
  ASSERT_EQ(resent.size(), 1u) << "only the unacknowledged result goes again";
  EXPECT_EQ(resent[0].ref().task_id(), first[2].ref().task_id());
  EXPECT_EQ(resent[0].sequence(), 3u) << "with its number";
  // The registration listed it as held, so the orchestrator keeps its lease
  // (even one that restarted meanwhile) for the result that follows.
  const v1::Register again = link->Registration(1);
  ASSERT_EQ(again.running_size(), 1);
  EXPECT_EQ(again.running(0).task_id(), first[2].ref().task_id());

  // New results follow with new numbers.
  link->Deliver(1, Assign({"d"}));
  const std::vector<v1::TaskResult> second = link->Results(1, 2);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[1].ref().task_id(), "d");
  EXPECT_EQ(second[1].sequence(), 4u);
  link->Deliver(1, AckThrough(4));
  link->End(1);
  ASSERT_TRUE(clock.AdvanceUntil([&] { return link->sessions() == 3; }, absl::Milliseconds(50)));
  // Everything was acknowledged: a result sent again would come first.
  link->Deliver(2, Assign({"e"}));
  const std::vector<v1::TaskResult> third = link->Results(2, 1);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].ref().task_id(), "e") << "nothing sent again before it";
  EXPECT_EQ(third[0].sequence(), 5u);
}

// Issue 22: to an orchestrator that takes them so, the slots results free
// travel in the results' message (one write instead of two); to one that
// does not say so, in a Credit message as before.
TEST(AgentClientTest, FreedSlotsTravelWithTheResultsWhenTheOrchestratorTakesThem) {
  for (const bool takes_them : {true, false}) {
    SCOPED_TRACE(takes_them ? "credit_in_results" : "an older orchestrator");
    AgentConfig config;
    config.slots = 2;
    ScriptedAgent scripted(config);
    auto& link = scripted.link;
    v1::OrchestratorMessage registered;
    registered.mutable_registered()->set_agent("agents/a");
    registered.mutable_registered()->set_credit_in_results(takes_them);
    link->Deliver(0, registered);
    // The Registered reply is handled before the assignment behind it.
    link->Deliver(0, Assign({"a", "b"}));
    ASSERT_EQ(link->Results(0, 2).size(), 2u);
    EXPECT_EQ(link->Granted(0, 4), 4) << "2 at registration, 2 freed";
    int credit_messages = 0;
    int credit_in_results = 0;
    for (const v1::AgentMessage& message : link->Written(0)) {
      credit_messages += message.has_credit() ? 1 : 0;
      credit_in_results += message.task_results().credit();
    }
    if (takes_them) {
      EXPECT_EQ(credit_messages, 0);
      EXPECT_EQ(credit_in_results, 2);
    } else {
      EXPECT_GE(credit_messages, 1);
      EXPECT_EQ(credit_in_results, 0);
    }
  }
}

// Where the first message of session 0 that `is` picks sits in what it
// received; -1 when there is none.
int PositionOf(ScriptedLink& link, const std::function<bool(const v1::AgentMessage&)>& is) {
  const std::vector<v1::AgentMessage> written = link.Written(0);
  for (size_t i = 0; i < written.size(); ++i) {
    if (is(written[i])) return static_cast<int>(i);
  }
  return -1;
}

bool IsStart(const v1::AgentMessage& message) { return message.has_task_started(); }
bool IsResult(const v1::AgentMessage& message) {
  return message.has_task_result() || message.has_task_results();
}

// Waits (in real time, up to 10 s) for session 0 to receive what `is` picks.
bool AwaitWritten(ScriptedLink& link, const std::function<bool(const v1::AgentMessage&)>& is) {
  for (int i = 0; i < 1000; ++i) {
    if (PositionOf(link, is) >= 0) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

TEST(AgentClientTest, ATaskThatEndsBeforeItsStartIsReportedSendsOnlyItsResult) {
  AgentConfig config;
  config.start_report_delay = absl::Hours(1);
  ScriptedAgent scripted(config);
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  link->Deliver(0, AssignCommand("quick", "true"));
  const std::vector<v1::TaskResult> results = link->Results(0, 1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome(), v1::ATTEMPT_SUCCEEDED) << results[0].error();
  EXPECT_EQ(PositionOf(*link, IsStart), -1)
      << "the result alone: the orchestrator records it as the start and the end";
}

TEST(AgentClientTest, ATaskStillRunningAfterTheDelayIsReportedStartedWithItsPid) {
  AgentConfig config;
  config.start_report_delay = absl::Milliseconds(20);
  ScriptedAgent scripted(config);
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  link->Deliver(0, AssignCommand("long", "exec sleep 300"));
  ASSERT_TRUE(AwaitWritten(*link, IsStart)) << "a task running past the delay is reported";
  const v1::TaskStarted started = link->Written(0)[PositionOf(*link, IsStart)].task_started();
  EXPECT_EQ(started.ref().task_id(), "long");
  ASSERT_GT(started.pid(), 0);
  EXPECT_EQ(kill(started.pid(), 0), 0) << "the task's process, running";
  link->Deliver(0, CancelTask("long"));
  const std::vector<v1::TaskResult> results = link->Results(0, 1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome(), v1::ATTEMPT_CANCELLED);
  EXPECT_LT(PositionOf(*link, IsStart), PositionOf(*link, IsResult));
}

TEST(AgentClientTest, ATasksOutputGoesAfterItsStartHowEverLongTheDelay) {
  AgentConfig config;
  config.start_report_delay = absl::Hours(1);
  ScriptedAgent scripted(config);
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  link->Deliver(0, AssignCommand("talk", "echo hello; exec sleep 300"));
  ASSERT_TRUE(AwaitWritten(*link, [](const v1::AgentMessage& message) {
    return message.has_log_chunk() &&
           message.log_chunk().chunk().data().find("hello") != std::string::npos;
  }));
  const int start = PositionOf(*link, IsStart);
  ASSERT_GE(start, 0) << "output of a task never reported started";
  EXPECT_LT(start, PositionOf(*link, [](const v1::AgentMessage& m) { return m.has_log_chunk(); }));
  link->Deliver(0, CancelTask("talk"));
  ASSERT_EQ(link->Results(0, 1).size(), 1u);
}

// How many results each of session 0's messages that carries some holds.
std::vector<int> ResultBatchSizes(ScriptedLink& link) {
  std::vector<int> sizes;
  for (const v1::AgentMessage& message : link.Written(0)) {
    if (message.has_task_result()) sizes.push_back(1);
    if (message.has_task_results()) sizes.push_back(message.task_results().results_size());
  }
  return sizes;
}

// An agent of `cpus` CPUs whose results linger up to `linger`.
AgentConfig Lingering(double cpus, absl::Duration linger, int64_t slots = 4) {
  AgentConfig config;
  config.cpu = cpus;
  config.slots = slots;
  config.result_linger = linger;
  return config;
}

TEST(AgentClientTest, WhileMoreProcessesRunThanCpusResultsWaitToShareAMessage) {
  ScriptedAgent scripted(Lingering(1, absl::Seconds(5), 8));
  ScriptedLink& link = *scripted.link;
  // Two processes that keep running (killed with the agent), and three
  // that end 200 ms apart: five processes on one CPU.
  link.Deliver(0, AssignCommand("long-1", "sleep 60"));
  link.Deliver(0, AssignCommand("long-2", "sleep 60"));
  link.Deliver(0, AssignCommand("a", "sleep 0.1"));
  link.Deliver(0, AssignCommand("b", "sleep 0.3"));
  link.Deliver(0, AssignCommand("c", "sleep 0.5"));
  ASSERT_EQ(link.Results(0, 3).size(), 3u);
  EXPECT_EQ(ResultBatchSizes(link), std::vector<int>{3}) << "the three share one message";
}

TEST(AgentClientTest, LingeringResultsGoAsSoonAsACpuIsFree) {
  ScriptedAgent scripted(Lingering(1, absl::Hours(1)));
  ScriptedLink& link = *scripted.link;
  // Three processes on one CPU: the first result waits while two still
  // run; when the second ends, one process is left for the one CPU, so both
  // results go at once (as the last tasks of a DAG's layer, whose results
  // the next layer waits for), long before the hour.
  link.Deliver(0, AssignCommand("a", "sleep 0.1"));
  link.Deliver(0, AssignCommand("b", "sleep 0.3"));
  link.Deliver(0, AssignCommand("c", "sleep 0.6"));
  ASSERT_EQ(link.Results(0, 3).size(), 3u) << "not held for the hour";
  // {2, 1}; {3} if the first wait outlasted all three on a loaded machine.
  const std::vector<int> sizes = ResultBatchSizes(link);
  ASSERT_FALSE(sizes.empty());
  EXPECT_GE(sizes.front(), 2) << "the first result waited for the second";
}

TEST(AgentClientTest, BuiltinsUseNoCpuSoTheirResultsNeverLinger) {
  ScriptedAgent scripted(Lingering(1, absl::Hours(1), 8));
  ScriptedLink& link = *scripted.link;
  link.Deliver(0, AssignSleep("long-1", absl::Hours(1)));
  link.Deliver(0, AssignSleep("long-2", absl::Hours(1)));
  link.Deliver(0, Assign({"a"}));
  EXPECT_EQ(link.Results(0, 1).size(), 1u) << "sleeps take no CPU: nothing to wait for";
}

TEST(AgentClientTest, AnAgentDestroyedWithProcessesRunningKillsThem) {
  std::vector<pid_t> pids;
  {
    AgentConfig config;
    config.slots = 8;
    config.start_report_delay = absl::ZeroDuration();  // each start, with its pid
    ScriptedAgent scripted(config);
    ScriptedLink& link = *scripted.link;
    for (int i = 0; i < 6; ++i) {
      link.Deliver(0, AssignCommand(absl::StrCat("long-", i), "sleep 60"));
    }
    for (int i = 0; i < 1000 && pids.size() < 6; ++i) {
      pids.clear();
      for (const v1::AgentMessage& message : link.Written(0)) {
        if (message.has_task_started()) pids.push_back(message.task_started().pid());
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_EQ(pids.size(), 6u);
    // Destroyed here, its tasks still running: their results come back
    // while it is torn down (this once spun on the client's destroyed
    // mutex).
  }
  for (pid_t pid : pids) EXPECT_NE(kill(pid, 0), 0) << pid << " outlived its agent";
}

TEST(AgentClientTest, AResultGoesAtOnceWhileACpuIsFree) {
  ScriptedAgent scripted(Lingering(8, absl::Hours(1)));
  ScriptedLink& link = *scripted.link;
  link.Deliver(0, AssignCommand("a", "sleep 0.1"));
  link.Deliver(0, AssignCommand("b", "sleep 0.3"));
  EXPECT_EQ(link.Results(0, 2).size(), 2u) << "not held for the linger: CPUs were free";
}

TEST(AgentClientTest, HeartbeatsFollowTheIntervalTheOrchestratorSets) {
  ScriptedAgent scripted;
  FakeClock& clock = scripted.clock;
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  // Registered asks for a heartbeat every 50 ms; the agent starts out with
  // 5 s. Within 3 s of the clock, the old wait alone would have sent none.
  v1::OrchestratorMessage registered;
  registered.mutable_registered()->mutable_heartbeat_interval()->set_nanos(50'000'000);
  link->Deliver(0, registered);
  const absl::Time start = clock.Now();
  size_t heartbeats = 0;
  while (heartbeats < 5 && clock.Now() - start < absl::Seconds(3)) {
    clock.Advance(absl::Milliseconds(50));
    heartbeats = link->Heartbeats(0, heartbeats + 1, absl::Milliseconds(200));
  }
  EXPECT_GE(heartbeats, 5u);
}

TEST(AgentClientTest, ReconnectBackoffDoublesUpToAQuarterOfTheLeaseTimeout) {
  ScriptedAgent scripted;
  FakeClock& clock = scripted.clock;
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  AgentClient& agent = scripted.agent;
  // Leases time out after 2 s: the agent must try again at least every
  // 500 ms, or a restarted orchestrator would give its leases up.
  v1::OrchestratorMessage registered;
  registered.mutable_registered()->mutable_lease_timeout()->set_seconds(2);
  link->Deliver(0, registered);
  // Backoffs 100, 200, 400 ms, then the cap of 500 ms (not 800 ms).
  const absl::Duration expected[] = {absl::Milliseconds(100), absl::Milliseconds(200),
                                     absl::Milliseconds(400), absl::Milliseconds(500),
                                     absl::Milliseconds(500)};
  for (size_t i = 0; i < std::size(expected); ++i) {
    // The registration is read before the session breaks.
    ASSERT_TRUE(link->Registration(i).agent_id() == agent.agent_id()) << "session " << i;
    link->End(i);
    ASSERT_TRUE(
        clock.AdvanceUntil([&] { return link->sessions() == i + 2; }, absl::Milliseconds(5)))
        << "session " << i + 1 << " never opened";
    const absl::Duration gap = link->OpenedAt(i + 1) - link->OpenedAt(i);
    EXPECT_GE(gap, expected[i]) << "reconnect " << i + 1;
    // Uncapped, the last would be 1600 ms. (The wide margin is for the clock
    // moving on while the agent notices the break, on a busy machine.)
    if (i == std::size(expected) - 1) {
      EXPECT_LT(gap, absl::Seconds(1)) << "reconnect " << i + 1;
    }
  }
}

TEST(AgentClientTest, CancellingABuiltinSleepReportsItCancelled) {
  ScriptedAgent scripted;
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  // The clock never moves: only the cancel can end the sleep. A cancelled
  // built-in reports on the thread that cancels it, which must not hold
  // the agent's lock then (it deadlocked the stream's reader once).
  link->Deliver(0, AssignSleep("nap", absl::Hours(1)));
  link->Deliver(0, CancelTask("nap"));
  const std::vector<v1::TaskResult> results = link->Results(0, 1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].ref().task_id(), "nap");
  EXPECT_EQ(results[0].outcome(), v1::ATTEMPT_CANCELLED);
}

TEST(AgentClientTest, ACancelThatOvertakesItsAssignmentKeepsTheTaskFromRunning) {
  ScriptedAgent scripted;
  gyre::testing::ScratchDir& scratch = scripted.scratch;
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  // The orchestrator sends an assignment once its lease is durable but a
  // cancel at once: the cancel can arrive first. The task must not run.
  const std::string marker = scratch.path() + "/ran";
  link->Deliver(0, CancelTask("early"));
  link->Deliver(0, AssignCommand("early", "touch " + marker));
  // A later attempt of another task runs as usual (the ordering point: its
  // result comes after the cancelled one's).
  link->Deliver(0, Assign({"after"}));
  const std::vector<v1::TaskResult> results = link->Results(0, 2);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].ref().task_id(), "early");
  EXPECT_EQ(results[0].outcome(), v1::ATTEMPT_CANCELLED);
  EXPECT_NE(results[0].error().find("before its assignment arrived"), std::string::npos)
      << results[0].error();
  EXPECT_EQ(results[1].ref().task_id(), "after");
  EXPECT_EQ(results[1].outcome(), v1::ATTEMPT_SUCCEEDED);
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the cancelled task ran";
}

TEST(AgentClientTest, AStartedAgentHasMadeADirectoryForEachSlot) {
  AgentConfig config;
  config.slots = 5;
  ScriptedAgent scripted(config);
  const std::string slots = absl::StrCat(scripted.scratch.path(), "/.slots-", getpid());
  std::error_code error;
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(slots, error),
                          std::filesystem::directory_iterator()),
            5)
      << error.message();
}

TEST(AgentClientTest, AnAgentThatKeepsWorkDirsMakesNoneAhead) {
  AgentConfig config;
  config.keep_work_dirs = true;
  ScriptedAgent scripted(config);
  EXPECT_FALSE(
      std::filesystem::exists(absl::StrCat(scripted.scratch.path(), "/.slots-", getpid())));
}

TEST(AgentClientTest, WorkDirNameIsOnePathComponentOrAnError) {
  v1::AttemptRef ref;
  ref.set_execution("executions/e1");
  ref.set_task_id("t");
  ref.set_attempt(3);
  EXPECT_EQ(WorkDirName(ref).value_or(""), "e1.t.3");
  // Found by fuzz/orchestrator_message (corpus: finding-short-execution-name):
  // an execution name shorter than "executions/" threw std::out_of_range
  // from substr and aborted the agent.
  ref.set_execution("");
  EXPECT_FALSE(WorkDirName(ref).ok());
  ref.set_execution("e1");
  EXPECT_EQ(WorkDirName(ref).value_or(""), "e1.t.3");
  // A slash would place the directory (removed after the attempt) elsewhere.
  ref.set_task_id("../../../home");
  EXPECT_FALSE(WorkDirName(ref).ok());
  ref.set_task_id("t");
  ref.set_execution("executions/../x");
  EXPECT_FALSE(WorkDirName(ref).ok());
}

TEST(AgentClientTest, AnAssignmentWithoutAUsableWorkDirFailsAndTheAgentGoesOn) {
  ScriptedAgent scripted;
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  v1::OrchestratorMessage bad = AssignCommand("bad", "true");
  bad.mutable_assignment()->mutable_tasks(0)->mutable_ref()->set_execution("");
  link->Deliver(0, bad);
  link->Deliver(0, Assign({"after"}));
  const std::vector<v1::TaskResult> results = link->Results(0, 2);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].outcome(), v1::ATTEMPT_FAILED);
  EXPECT_NE(results[0].error().find("work directory"), std::string::npos) << results[0].error();
  EXPECT_EQ(results[1].ref().task_id(), "after");
  EXPECT_EQ(results[1].outcome(), v1::ATTEMPT_SUCCEEDED);
}

TEST(AgentClientTest, AHugeTimeoutIsNoTimeoutAtAll) {
  ScriptedAgent scripted;
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  // int64 seconds overflowed when converted to nanoseconds: the task was
  // given a negative timeout and reported timed out at once.
  v1::OrchestratorMessage message = AssignCommand("long", "true");
  message.mutable_assignment()->mutable_tasks(0)->mutable_timeout()->set_seconds(
      std::numeric_limits<int64_t>::max());
  link->Deliver(0, message);
  const std::vector<v1::TaskResult> results = link->Results(0, 1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome(), v1::ATTEMPT_SUCCEEDED) << results[0].error();
}

TEST(AgentClientTest, DrainCancelsWhatOutlivesTheGraceAndReportsIt) {
  gyre::testing::ScratchDir scratch("gyre_agent_client_test");
  AgentConfig config;
  config.work_dir = scratch.path();
  config.allow_root_tasks = true;  // the tests may run as root
  FakeClock clock;
  auto link = std::make_shared<ScriptedLink>(&clock);
  // The drain waits for the last results to be acknowledged.
  link->set_auto_ack(true);
  AgentClient agent(config, link, &clock);
  agent.Start();
  link->Deliver(0, AssignCommand("long", "echo started; sleep 300"));
  link->Deliver(0, AssignSleep("nap", absl::Hours(1)));
  // Wait for the process to run (its output streams back).
  {
    bool started = false;
    for (int i = 0; i < 3000 && !started; ++i) {
      started =
          link->Results(0, 0, absl::ZeroDuration()).empty() && link->LogContains(0, "started");
      if (!started) absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_TRUE(started);
  }
  const absl::Time drain_started = clock.Now();
  absl::Notification drained;
  std::thread drain([&] {
    agent.Drain(absl::Minutes(10));
    drained.Notify();
  });
  // Five minutes of real sleep and an hour of built-in sleep; the drain
  // ends both once ten minutes have passed on the clock.
  EXPECT_TRUE(clock.AdvanceUntil([&] { return drained.HasBeenNotified(); }, absl::Seconds(10)));
  drain.join();
  EXPECT_GE(clock.Now() - drain_started, absl::Minutes(10)) << "the tasks had their grace";
  const std::vector<v1::TaskResult> results = link->Results(0, 2);
  ASSERT_EQ(results.size(), 2u);
  for (const v1::TaskResult& result : results) {
    EXPECT_EQ(result.outcome(), v1::ATTEMPT_CANCELLED) << result.ref().task_id();
  }
}

TEST(AgentClientTest, TwoGpuTasksOnATwoGpuAgentSeeDifferentDevices) {
  AgentConfig config;
  config.gpu_devices = {"0", "1"};  // a simulated device list
  ScriptedAgent scripted(config);
  gyre::testing::ScratchDir& scratch = scripted.scratch;
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  EXPECT_EQ(link->Registration(0).resources().gpus(), 2);
  // Each holds its device until the test lets both go, so they run at once.
  const std::string go = scratch.path() + "/go";
  const std::string script =
      absl::StrCat("echo \"gpu[$CUDA_VISIBLE_DEVICES/$NVIDIA_VISIBLE_DEVICES]\"; while [ ! -e ", go,
                   " ]; do sleep 0.01; done");
  v1::OrchestratorMessage message = AssignCommand("a", script);
  *message.mutable_assignment()->add_tasks() = AssignCommand("b", script).assignment().tasks(0);
  *message.mutable_assignment()->add_tasks() = AssignCommand("cpu", script).assignment().tasks(0);
  message.mutable_assignment()->mutable_tasks(1)->mutable_ref()->set_task_id("b");
  message.mutable_assignment()->mutable_tasks(2)->mutable_ref()->set_task_id("cpu");
  message.mutable_assignment()->mutable_tasks(0)->mutable_resources()->set_gpus(1);
  message.mutable_assignment()->mutable_tasks(1)->mutable_resources()->set_gpus(1);
  link->Deliver(0, message);
  bool all_started = false;
  for (int i = 0; i < 3000 && !all_started; ++i) {
    all_started = (link->LogContains(0, "gpu[0/0]") && link->LogContains(0, "gpu[1/1]") &&
                   link->LogContains(0, "gpu[/void]"));
    if (!all_started) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(all_started) << "devices 0 and 1, one each, and none for the CPU task";
  { std::ofstream(go.c_str()) << "go"; }
  const std::vector<v1::TaskResult> results = link->Results(0, 3, absl::Seconds(30));
  ASSERT_EQ(results.size(), 3u);
  for (const v1::TaskResult& result : results) {
    EXPECT_EQ(result.outcome(), v1::ATTEMPT_SUCCEEDED) << result.error();
  }
}

TEST(AgentClientTest, ARootAgentRefusesToRunTasksAsRootUnlessAllowed) {
  if (geteuid() != 0) GTEST_SKIP() << "the refusal concerns an agent running as root";
  gyre::testing::ScratchDir scratch("gyre_agent_client_test");
  AgentConfig config;
  config.work_dir = scratch.path();
  FakeClock clock;
  auto link = std::make_shared<ScriptedLink>(&clock);
  AgentClient agent(config, link, &clock);
  agent.Start();
  link->Deliver(0, AssignCommand("a", "touch ran"));
  const std::vector<v1::TaskResult> results = link->Results(0, 1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome(), v1::ATTEMPT_FAILED);
  EXPECT_EQ(results[0].error(),
            "refusing to run tasks as root: set run_as_user to an unprivileged user (e.g. "
            "nobody), or allow_root_tasks: true to accept it");
}

TEST(AgentClientTest, TheRegistrationSaysWhetherLimitsAreEnforced) {
  AgentConfig config;
  config.cgroups = false;
  ScriptedAgent scripted(config);
  std::shared_ptr<ScriptedLink>& link = scripted.link;
  const v1::Register registration = link->Registration(0);
  EXPECT_FALSE(registration.limits_enforced());
  EXPECT_EQ(registration.limits_enforcement(),
            "none: turned off by configuration (cgroups: false)");
}

// Two orchestrators (issue 21): the slots are split by credit, never more
// promised or running than the agent has, and a busy orchestrator gets the
// slots the idle one does not hold.
TEST(AgentClientTest, SlotsAreSplitByCreditAcrossOrchestrators) {
  gyre::testing::ScratchDir scratch("gyre_agent_client_test");
  AgentConfig config;
  config.slots = 4;
  config.work_dir = scratch.path();
  config.allow_root_tasks = true;  // the tests may run as root
  auto a = std::make_shared<ScriptedLink>(Clock::Real());
  auto b = std::make_shared<ScriptedLink>(Clock::Real());
  AgentClient agent(config);
  agent.SetOrchestrators({{"a", a}, {"b", b}});
  agent.Start();
  const v1::Register on_a = a->Registration(0);
  const v1::Register on_b = b->Registration(0);
  // A stream holds at most slots / (2 x 2 orchestrators) unused credit.
  EXPECT_EQ(on_a.initial_credit(), 1);
  EXPECT_EQ(on_b.initial_credit(), 1);
  EXPECT_EQ(on_a.slots(), 4) << "each orchestrator still sees the agent's size";

  // A has work: it assigns whenever it holds credit; B stays idle.
  int assigned = 0;
  while (a->Granted(0, assigned + 1, absl::Seconds(2)) > assigned) {
    a->Deliver(0, AssignSleep(absl::StrCat("a", assigned), absl::Seconds(60)));
    assigned++;
    ASSERT_LE(assigned, 4);
  }
  // The 4 slots: 3 running for A, 1 promised to B.
  EXPECT_EQ(assigned, 3);
  EXPECT_EQ(a->Granted(0, 0, absl::ZeroDuration()), 3);
  EXPECT_EQ(b->Granted(0, 0, absl::ZeroDuration()), 1);
  // B uses its one: nothing is free, nobody gets more.
  b->Deliver(0, AssignSleep("b0", absl::Seconds(60)));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(a->Granted(0, 0, absl::ZeroDuration()) + b->Granted(0, 0, absl::ZeroDuration()), 4);
  // A cancels one of its own: the slot goes to B, which holds fewer.
  v1::OrchestratorMessage cancel = CancelTask("a0");
  a->Deliver(0, cancel);
  EXPECT_EQ(b->Granted(0, 2), 2);
  EXPECT_EQ(a->Granted(0, 0, absl::ZeroDuration()), 3);
  // B may not stop A's attempts.
  b->Deliver(0, CancelTask("a1"));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(a->Results(0, 2, absl::Milliseconds(200)).size(), 1u) << "only a0 ended";

  // B's stream breaks. Registering again, the agent lists B's attempt as
  // its own and A's apart: B cancels only what it leased, and if it took
  // A's shard over it keeps those leases (the work is not run twice).
  b->End(0);
  const v1::Register again = b->Registration(1);
  ASSERT_EQ(again.running_size(), 1);
  EXPECT_EQ(again.running(0).task_id(), "b0");
  std::set<std::string> elsewhere;
  for (const v1::AttemptRef& ref : again.running_elsewhere()) elsewhere.insert(ref.task_id());
  EXPECT_EQ(elsewhere, (std::set<std::string>{"a1", "a2"}));
}

TEST(AgentClientTest, ARefusedResultGoesToAnotherOrchestratorRenumbered) {
  gyre::testing::ScratchDir scratch("gyre_agent_client_test");
  AgentConfig config;
  config.slots = 2;
  config.work_dir = scratch.path();
  config.allow_root_tasks = true;  // the tests may run as root
  FakeClock clock;
  auto a = std::make_shared<ScriptedLink>(&clock);
  auto b = std::make_shared<ScriptedLink>(&clock);
  AgentClient agent(config, &clock);
  agent.SetOrchestrators({{"a", a}, {"b", b}});
  agent.Start();
  a->Registration(0);
  b->Registration(0);
  a->Deliver(0, Assign({"x"}));
  const std::vector<v1::TaskResult> first = a->Results(0, 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].sequence(), 1u);

  auto refuse = [](const v1::TaskResult& result) {
    v1::OrchestratorMessage message;
    *message.mutable_result_refused()->mutable_ref() = result.ref();
    message.mutable_result_refused()->set_sequence(result.sequence());
    message.mutable_result_refused()->set_shard(7);
    return message;
  };
  a->Deliver(0, refuse(first[0]));
  const std::vector<v1::TaskResult> moved = b->Results(0, 1);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].ref().task_id(), "x");
  EXPECT_EQ(moved[0].sequence(), 2u) << "a new number for B's session";

  // B refuses too (the shard is between owners): both are asked again
  // after the backoff, and the one that takes it keeps it acknowledged.
  b->Deliver(0, refuse(moved[0]));
  ASSERT_TRUE(clock.AdvanceUntil(
      [&] {
        return a->Results(0, 2, absl::ZeroDuration()).size() +
                   b->Results(0, 2, absl::ZeroDuration()).size() ==
               3;
      },
      absl::Milliseconds(100)));
  const std::vector<v1::TaskResult> on_a = a->Results(0, 2, absl::ZeroDuration());
  const std::vector<v1::TaskResult> on_b = b->Results(0, 2, absl::ZeroDuration());
  const v1::TaskResult& third = on_a.size() == 2 ? on_a[1] : on_b[1];
  EXPECT_EQ(third.ref().task_id(), "x");
  EXPECT_EQ(third.sequence(), 3u);
  (on_a.size() == 2 ? a : b)->Deliver(0, AckThrough(3));
}

}  // namespace
}  // namespace gyre::agent
