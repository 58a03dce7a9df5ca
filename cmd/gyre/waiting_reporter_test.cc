#include "cmd/gyre/waiting_reporter.h"

#include <grpcpp/grpcpp.h>
#include <stdio.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

// An orchestrator that answers GetTaskRun only: every task is ready and no
// agent serves its queue. Counts the questions.
class ReadyForeverService : public v1::OrchestratorService::Service {
 public:
  grpc::Status GetTaskRun(grpc::ServerContext*, const v1::GetTaskRunRequest* request,
                          v1::TaskRun* run) override {
    absl::MutexLock lock(&mutex_);
    questions_++;
    run->set_name(request->name());
    run->set_state(v1::TASK_READY);
    run->set_waiting_reason("waiting for an agent serving queue \"gpu\"");
    return grpc::Status::OK;
  }
  int questions() {
    absl::MutexLock lock(&mutex_);
    return questions_;
  }

 private:
  absl::Mutex mutex_;
  int questions_ ABSL_GUARDED_BY(mutex_) = 0;
};

class WaitingReporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    out_ = tmpfile();
    ASSERT_NE(out_, nullptr);
  }
  void TearDown() override {
    server_->Shutdown();
    fclose(out_);
  }

  // What the console printed so far.
  std::string Printed() {
    fflush(out_);
    rewind(out_);
    std::string text;
    char buffer[4096];
    for (size_t n; (n = fread(buffer, 1, sizeof(buffer), out_)) > 0;) text.append(buffer, n);
    return text;
  }

  // Waits until `lines` lines are printed (or 10 s).
  std::string AwaitLines(size_t lines) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    std::string text = Printed();
    while (static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) < lines &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      text = Printed();
    }
    return text;
  }

  ReadyForeverService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
  FILE* out_ = nullptr;
};

v1::WorkflowDefinition GpuTasks(int count) {
  v1::WorkflowDefinition definition;
  for (int i = 0; i < count; ++i) {
    v1::TaskSpec* task = definition.add_tasks();
    task->set_id(absl::StrCat("t", i));
    task->set_queue("gpu");
  }
  return definition;
}

TEST_F(WaitingReporterTest, TasksThatWaitAlikeAreToldOnceTogether) {
  RunConsole console(out_, /*interactive=*/false);
  {
    WaitingReporter reporter(stub_.get(), "executions/e", GpuTasks(20), &console,
                             absl::Milliseconds(100));
    for (int i = 0; i < 20; ++i) reporter.Update(absl::StrCat("t", i), v1::TASK_READY);
    const std::string text = AwaitLines(1);
    ASSERT_TRUE(absl::StrContains(
        text, "ready (waiting for an agent serving queue \"gpu\"); 19 more like it wait too"))
        << text;
    absl::SleepFor(absl::Milliseconds(500));  // several more rounds
  }
  const std::string text = Printed();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << "the same reason, said once:\n"
                                                           << text;
  // One question a round for the whole group (~6 rounds), not one per task.
  EXPECT_LE(service_.questions(), 10);
}

TEST_F(WaitingReporterTest, WithoutTheDefinitionEachTaskIsToldAFewARound) {
  RunConsole console(out_, /*interactive=*/false);
  WaitingReporter reporter(stub_.get(), "executions/e", v1::WorkflowDefinition(), &console,
                           absl::Milliseconds(100));
  for (int i = 0; i < 20; ++i) reporter.Update(absl::StrCat("t", i), v1::TASK_READY);
  const std::string text = AwaitLines(20);
  const std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 20u) << text;
  // Every task once, 8 questions a round at most: three rounds at least.
  EXPECT_GE(service_.questions(), 20);
}

TEST_F(WaitingReporterTest, ATaskThatIsTakenIsNotReported) {
  RunConsole console(out_, /*interactive=*/false);
  {
    WaitingReporter reporter(stub_.get(), "executions/e", GpuTasks(1), &console,
                             absl::Milliseconds(300));
    reporter.Update("t0", v1::TASK_READY);
    reporter.Update("t0", v1::TASK_LEASED);
    absl::SleepFor(absl::Milliseconds(800));
  }
  EXPECT_EQ(Printed(), "");
  EXPECT_EQ(service_.questions(), 0);
}

}  // namespace
}  // namespace gyre::cli
