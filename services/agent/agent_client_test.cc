#include "services/agent/agent_client.h"

#include <deque>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "libs/testing/scratch_dir.h"

namespace gyre::agent {
namespace {

namespace v1 = ::gyre::v1;

// The orchestrator's side of the agent protocol, scripted by the test: it
// records what each session receives and delivers what the test queues.
class ScriptedLink : public OrchestratorLink {
 public:
  class Session : public OrchestratorSession {
   public:
    explicit Session(ScriptedLink* link) : link_(link) {}
    bool Write(const v1::AgentMessage& message) override {
      absl::MutexLock lock(&link_->mutex_);
      if (ended_) return false;
      written_.push_back(message);
      return true;
    }
    bool Read(v1::OrchestratorMessage* message) override {
      absl::MutexLock lock(&link_->mutex_);
      auto ready = [this]() { return ended_ || !inbox_.empty(); };
      link_->mutex_.Await(absl::Condition(&ready));
      // What was queued before the end is still delivered.
      if (inbox_.empty()) return false;
      *message = std::move(inbox_.front());
      inbox_.pop_front();
      return true;
    }
    void Cancel() override {
      absl::MutexLock lock(&link_->mutex_);
      ended_ = true;
    }
    absl::Status Finish() override { return absl::OkStatus(); }

   private:
    friend class ScriptedLink;
    ScriptedLink* const link_;
    // Guarded by link_->mutex_. Not annotated: the link reaches them as
    // sessions_[i]->..., and Clang cannot see that sessions_[i]->link_ is
    // the link itself.
    std::vector<v1::AgentMessage> written_;
    std::deque<v1::OrchestratorMessage> inbox_;
    bool ended_ = false;
  };

  std::unique_ptr<OrchestratorSession> Open() override {
    auto session = std::make_unique<Session>(this);
    absl::MutexLock lock(&mutex_);
    sessions_.push_back(session.get());
    return session;
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
  // The results session `index` has received once there are `count` (or
  // after `wait`).
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

  absl::Mutex mutex_;
  std::vector<Session*> sessions_ ABSL_GUARDED_BY(mutex_);  // owned by the agent
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

v1::OrchestratorMessage AckThrough(uint64_t sequence) {
  v1::OrchestratorMessage message;
  message.mutable_result_ack()->set_through_sequence(sequence);
  return message;
}

TEST(AgentClientTest, ResultsAreNumberedAndOnlyUnacknowledgedOnesAreSentAgain) {
  gyre::testing::ScratchDir scratch("gyre_agent_client_test");
  AgentConfig config;
  config.slots = 8;
  config.work_dir = scratch.path();
  auto link = std::make_shared<ScriptedLink>();
  AgentClient agent(config, link);
  agent.Start();

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
  EXPECT_TRUE(link->Results(2, 1, absl::Seconds(1)).empty())
      << "everything acknowledged: nothing sent again";
}

TEST(AgentClientTest, HeartbeatsFollowTheIntervalTheOrchestratorSets) {
  gyre::testing::ScratchDir scratch("gyre_agent_client_test");
  AgentConfig config;
  config.work_dir = scratch.path();
  auto link = std::make_shared<ScriptedLink>();
  AgentClient agent(config, link);
  agent.Start();
  // Registered asks for a heartbeat every 50 ms; the agent starts out with
  // 5 s. Within 3 s, the old wait alone would have sent none.
  v1::OrchestratorMessage registered;
  registered.mutable_registered()->mutable_heartbeat_interval()->set_nanos(50'000'000);
  link->Deliver(0, registered);
  EXPECT_GE(link->Heartbeats(0, 5, absl::Seconds(3)), 5u);
}

}  // namespace
}  // namespace gyre::agent
