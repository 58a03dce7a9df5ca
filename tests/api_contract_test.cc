// The documented API contract, enforced at the edge: names, durations, paging, control of pending
// executions and what context reaches tasks.
#include <functional>

#include "absl/strings/str_replace.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// A definition as a client sends it inline: no YAML, no parser checks.
v1::WorkflowDefinition Inline(const std::string& name) {
  v1::WorkflowDefinition def;
  def.set_name(name);
  v1::TaskSpec& task = *def.add_tasks();
  task.set_id("only");
  task.mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
  return def;
}

class ApiContract : public Cluster {
 protected:
  // Calls wait for the channel (it reconnects after an orchestrator restart).
  static void Patient(grpc::ClientContext& call) {
    call.set_wait_for_ready(true);
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  }

  // After a restart the channel's first call may still go to the old
  // connection and fail UNAVAILABLE: calls until one is answered.
  void AwaitReachable() {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      grpc::ClientContext call;
      Patient(call);
      v1::ListWorkflowsRequest request;
      request.set_page_size(1);
      v1::ListWorkflowsResponse page;
      if (stub_->ListWorkflows(&call, request, &page).error_code() !=
          grpc::StatusCode::UNAVAILABLE) {
        return;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "the orchestrator never answered after its restart";
  }

  grpc::Status StartRaw(const v1::StartExecutionRequest& request, v1::Execution* execution) {
    grpc::ClientContext call;
    Patient(call);
    return stub_->StartExecution(&call, request, execution);
  }

  grpc::Status Control(const std::string& name, bool pause, v1::Execution* execution) {
    grpc::ClientContext call;
    Patient(call);
    if (pause) {
      v1::PauseExecutionRequest request;
      request.set_name(name);
      return stub_->PauseExecution(&call, request, execution);
    }
    v1::ResumeExecutionRequest request;
    request.set_name(name);
    return stub_->ResumeExecution(&call, request, execution);
  }

  grpc::Status StartYaml(const std::string& yaml, const std::map<std::string, std::string>& context,
                         v1::Execution* execution) {
    absl::StatusOr<v1::WorkflowDefinition> def = workflow::ParseWorkflowYaml(yaml, "test.yaml");
    EXPECT_TRUE(def.ok()) << def.status();
    v1::StartExecutionRequest request;
    *request.mutable_definition() = *def;
    for (const auto& [key, value] : context) (*request.mutable_context())[key] = value;
    return StartRaw(request, execution);
  }

  v1::Execution Get(const std::string& name) {
    grpc::ClientContext call;
    Patient(call);
    v1::GetExecutionRequest request;
    request.set_name(name);
    v1::Execution execution;
    EXPECT_TRUE(stub_->GetExecution(&call, request, &execution).ok());
    return execution;
  }

  // Runs the gyre CLI with `args` against this cluster; its exit status and output.
  std::pair<int, std::string> Gyre(std::vector<std::string> args) {
    args.insert(args.begin(), Binary("cmd/gyre/gyre"));
    args.push_back("--orchestrator=" + address_);
    auto process = ChildProcess::Start(args);
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return {-1, ""};
    const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(30));
    EXPECT_TRUE(status.has_value());
    return {status.has_value() && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1,
            (*process)->Output()};
  }
};

// --- A task cannot wedge its slot ---

TEST_F(ApiContract, AFifoOrSymlinkAtGyreOutputFailsTheTaskAndTheAgentTakesTheNext) {
  StartAgent("a1", /*slots=*/1);
  // One slot: "after" runs only once the agent is done with both.
  const std::string exec = Start(
      "name: wedge\n"
      "tasks:\n"
      "  - id: fifo\n"
      "    shell: true\n"
      "    command: 'rm -f \"$GYRE_OUTPUT\"; mkfifo \"$GYRE_OUTPUT\"'\n"
      "  - id: link\n"
      "    shell: true\n"
      "    command: 'rm -f \"$GYRE_OUTPUT\"; ln -s /etc/hostname \"$GYRE_OUTPUT\"'\n"
      "  - id: after\n"
      "    command: [echo, still serving]\n");
  EXPECT_EQ(Wait(exec), v1::EXECUTION_FAILED);
  const v1::TaskRun fifo = Task(exec, "fifo");
  EXPECT_EQ(fifo.state(), v1::TASK_FAILED);
  ASSERT_FALSE(fifo.attempts().empty());
  EXPECT_TRUE(absl::StrContains(fifo.attempts(0).error(), "$GYRE_OUTPUT is not a regular file"))
      << fifo.attempts(0).error();
  const v1::TaskRun link = Task(exec, "link");
  EXPECT_EQ(link.state(), v1::TASK_FAILED);
  ASSERT_FALSE(link.attempts().empty());
  EXPECT_TRUE(absl::StrContains(link.attempts(0).error(), "$GYRE_OUTPUT is a symbolic link"))
      << link.attempts(0).error();
  EXPECT_EQ(link.outputs().fields_size(), 0) << "what the link names was not read";
  EXPECT_EQ(Task(exec, "after").state(), v1::TASK_SUCCEEDED);
}

TEST_F(ApiContract, CancellingATaskThatLeftAFifoAtGyreOutputFreesTheSlot) {
  StartAgent("a1", /*slots=*/1);
  const std::string stuck = Start(
      "name: stuck\n"
      "tasks:\n"
      "  - id: fifo\n"
      "    shell: true\n"
      "    command: 'rm -f \"$GYRE_OUTPUT\"; mkfifo \"$GYRE_OUTPUT\"; sleep 60'\n");
  ASSERT_TRUE(AwaitTaskState(stuck, "fifo", v1::TASK_RUNNING));
  ASSERT_TRUE(Cancel(stuck).ok());
  // The one slot is free again: the next execution runs on it.
  const std::string next = Start("name: next\ntasks:\n  - {id: t, command: [echo, ok]}\n");
  EXPECT_EQ(Wait(next, absl::Seconds(40)), v1::EXECUTION_SUCCEEDED);
}

// --- ListWorkflows pages ---

TEST_F(ApiContract, ListWorkflowsPagesAndRefusesPagesOutOfRange) {
  for (const char* name : {"w-c", "w-a", "w-e", "w-b", "w-d"}) {
    grpc::ClientContext call;
    v1::CreateWorkflowRequest create;
    *create.mutable_workflow() = Inline(name);
    v1::WorkflowDefinition created;
    ASSERT_TRUE(stub_->CreateWorkflow(&call, create, &created).ok());
  }
  std::vector<std::string> names;
  int pages = 0;
  v1::ListWorkflowsRequest request;
  request.set_page_size(2);
  do {
    grpc::ClientContext call;
    v1::ListWorkflowsResponse page;
    const grpc::Status status = stub_->ListWorkflows(&call, request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(page.workflows_size(), 2) << "page_size is honoured";
    for (const auto& def : page.workflows()) names.push_back(def.name());
    request.set_page_token(page.next_page_token());
    ++pages;
  } while (!request.page_token().empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(names, (std::vector<std::string>{"workflows/w-a", "workflows/w-b", "workflows/w-c",
                                             "workflows/w-d", "workflows/w-e"}));

  for (int bad : {-5, 1001}) {
    grpc::ClientContext call;
    v1::ListWorkflowsRequest refused;
    refused.set_page_size(bad);
    v1::ListWorkflowsResponse page;
    const grpc::Status status = stub_->ListWorkflows(&call, refused, &page);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_TRUE(absl::StrContains(status.error_message(),
                                  absl::StrCat("page_size ", bad, " is out of range")))
        << status.error_message();
  }
  grpc::ClientContext call;
  v1::ListWorkflowsRequest forged;
  forged.set_page_token("p12");
  v1::ListWorkflowsResponse page;
  EXPECT_EQ(stub_->ListWorkflows(&call, forged, &page).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// --- Pause and resume of a pending execution ---

TEST_F(ApiContract, APendingExecutionPausedAndResumedIsPendingAndRunsOnceAnAgentJoins) {
  // No agent yet: nothing can start.
  const std::string exec = Start(
      "name: later\n"
      "tasks:\n"
      "  - {id: first, command: [echo, one]}\n"
      "  - {id: second, command: [echo, two], depends_on: [first]}\n");
  ASSERT_EQ(Get(exec).state(), v1::EXECUTION_PENDING);
  v1::Execution paused;
  ASSERT_TRUE(Pause(exec, &paused).ok());
  EXPECT_EQ(paused.state(), v1::EXECUTION_PAUSED);
  v1::Execution resumed;
  ASSERT_TRUE(Resume(exec, &resumed).ok());
  EXPECT_EQ(resumed.state(), v1::EXECUTION_PENDING) << "no task ran: it is not RUNNING";
  EXPECT_FALSE(resumed.has_start_time());
  StartAgent("a1");
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  EXPECT_TRUE(Get(exec).has_start_time());
}

// --- The documented contract on definitions ---

TEST_F(ApiContract, DefinitionsBreakingTheContractAreRefusedWithTheTaskAndTheReason) {
  struct Case {
    std::string what;
    std::function<void(v1::TaskSpec&)> spoil;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"empty env key", [](v1::TaskSpec& t) { (*t.mutable_env())[""] = "x"; },
       "task \"only\": env: empty variable name"},
      {"'=' in env key", [](v1::TaskSpec& t) { (*t.mutable_env())["A=B"] = "x"; },
       "task \"only\": env: variable name \"A=B\" must not contain '=' or NUL"},
      {"NUL in env key", [](v1::TaskSpec& t) { (*t.mutable_env())[std::string("A\0B", 3)] = "x"; },
       "task \"only\": env: variable name \"A\\x00\\x42\" must not contain '=' or NUL"},
      {"negative timeout", [](v1::TaskSpec& t) { t.mutable_timeout()->set_seconds(-1); },
       "task \"only\": timeout must not be negative"},
      {"negative backoff",
       [](v1::TaskSpec& t) { t.mutable_retry()->mutable_initial_backoff()->set_nanos(-5); },
       "task \"only\": retries.initial_backoff must not be negative"},
      {"negative max backoff",
       [](v1::TaskSpec& t) { t.mutable_retry()->mutable_max_backoff()->set_seconds(-3); },
       "task \"only\": retries.max_backoff must not be negative"},
      {"jitter over 1", [](v1::TaskSpec& t) { t.mutable_retry()->set_jitter(1.5); },
       "task \"only\": retries.jitter 1.5 is out of range [0, 1]"},
      {"negative jitter", [](v1::TaskSpec& t) { t.mutable_retry()->set_jitter(-0.1); },
       "task \"only\": retries.jitter -0.1 is out of range [0, 1]"},
      {"multiplier under 1", [](v1::TaskSpec& t) { t.mutable_retry()->set_multiplier(0.5); },
       "task \"only\": retries.multiplier 0.5 is out of range [1, 100] (0: the default, 2)"},
      {"undeclarable output", [](v1::TaskSpec& t) { t.add_outputs("LD_PRELOAD"); },
       "task \"only\": outputs: context key \"LD_PRELOAD\" is refused"},
  };
  for (const Case& c : cases) {
    v1::StartExecutionRequest request;
    *request.mutable_definition() = Inline("contract");
    c.spoil(*request.mutable_definition()->mutable_tasks(0));
    v1::Execution execution;
    const grpc::Status status = StartRaw(request, &execution);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what;
    EXPECT_TRUE(absl::StartsWith(status.error_message(), c.message))
        << c.what << ": " << status.error_message();
    // Stored definitions are held to the same contract.
    grpc::ClientContext call;
    v1::CreateWorkflowRequest create;
    *create.mutable_workflow() = request.definition();
    v1::WorkflowDefinition created;
    EXPECT_EQ(stub_->CreateWorkflow(&call, create, &created).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << c.what;
  }
  // 0 is the documented default for multiplier and jitter: accepted.
  v1::StartExecutionRequest defaults;
  *defaults.mutable_definition() = Inline("contract");
  defaults.mutable_definition()->mutable_tasks(0)->mutable_retry()->set_multiplier(0);
  v1::Execution execution;
  EXPECT_TRUE(StartRaw(defaults, &execution).ok());
}

// --- request_id names one request ---

TEST_F(ApiContract, AReusedRequestIdWithADifferentRequestIsRefusedAcrossARestart) {
  StartAgent("a1");
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Inline("idempotent");
  request.set_request_id("req-1");
  v1::Execution first;
  ASSERT_TRUE(StartRaw(request, &first).ok());
  v1::Execution again;
  ASSERT_TRUE(StartRaw(request, &again).ok()) << "a retry of the same request";
  EXPECT_EQ(again.name(), first.name());

  v1::StartExecutionRequest other = request;
  other.mutable_definition()->mutable_tasks(0)->set_description("another request");
  const std::string expected =
      absl::StrCat("request_id req-1 was used for a different request (", first.name(), ")");
  v1::Execution refused;
  grpc::Status status = StartRaw(other, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(absl::StartsWith(status.error_message(), expected)) << status.error_message();
  EXPECT_EQ(Wait(first.name()), v1::EXECUTION_SUCCEEDED);

  // What tells them apart is durable.
  RestartOrchestrator(SIGKILL);
  AwaitReachable();
  status = StartRaw(other, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
  ASSERT_TRUE(StartRaw(request, &again).ok());
  EXPECT_EQ(again.name(), first.name());
}

// --- Context is declared ---

constexpr char kDeclared[] =
    "name: declared\n"
    "context: {REGION: eu}\n"
    "tasks:\n"
    "  - id: produce\n"
    "    shell: true\n"
    "    command: 'echo \"{\\\"ORDERS\\\": \\\"250\\\"}\" > \"$GYRE_OUTPUT\"'\n"
    "    outputs: [ORDERS]\n"
    "  - id: consume\n"
    "    depends_on: [produce]\n"
    "    shell: true\n"
    "    command: 'echo \"orders=$ORDERS region=$REGION home=$HOME\"'\n";

TEST_F(ApiContract, AStartRequestMaySetOnlyDeclaredContextKeys) {
  for (const char* key : {"HOME", "GIT_SSH_COMMAND", "PAGER", "FOO"}) {
    v1::Execution execution;
    const grpc::Status status = StartYaml(kDeclared, {{key, "x"}}, &execution);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << key;
    EXPECT_EQ(status.error_message(),
              absl::StrCat("context key ", key,
                           " is not declared by workflow declared; declare it under `context:` (or "
                           "as a task's `outputs:`)"));
  }
  // gyre run --set says the same, as a bad input.
  const std::string file = root_ + "/declared.yaml";
  std::ofstream(file) << kDeclared;
  auto [code, output] = Gyre({"run", file, "--set", "HOME=/tmp/evil"});
  EXPECT_EQ(code, 2) << output;
  EXPECT_TRUE(absl::StrContains(output, "context key HOME is not declared by workflow declared"))
      << output;
}

TEST_F(ApiContract, ADeclaredKeyReachesTheNextTaskAndAnUndeclaredOutputFailsItsTask) {
  StartAgent("a1");
  v1::Execution good;
  ASSERT_TRUE(StartYaml(kDeclared, {{"REGION", "us"}}, &good).ok());
  EXPECT_EQ(Wait(good.name()), v1::EXECUTION_SUCCEEDED);
  const std::string logs = Logs(good.name(), "consume");
  EXPECT_TRUE(absl::StrContains(logs, "orders=250 region=us")) << logs;

  const std::string bad = Start(
      "name: sneaky\n"
      "tasks:\n"
      "  - id: produce\n"
      "    shell: true\n"
      "    command: 'echo \"{\\\"ORDERS\\\": \\\"1\\\", \\\"HOME\\\": \\\"/tmp/evil\\\"}\" > "
      "\"$GYRE_OUTPUT\"'\n"
      "    outputs: [ORDERS]\n"
      "    retries: 2\n"
      "  - id: consume\n"
      "    depends_on: [produce]\n"
      "    shell: true\n"
      "    command: 'echo \"home=$HOME\"'\n");
  EXPECT_EQ(Wait(bad), v1::EXECUTION_FAILED);
  const v1::TaskRun produce = Task(bad, "produce");
  EXPECT_EQ(produce.state(), v1::TASK_FAILED);
  ASSERT_EQ(produce.attempts_size(), 1) << "the task's code, not a transient fault: no retry";
  EXPECT_EQ(produce.attempts(0).error(),
            "$GYRE_OUTPUT: key \"HOME\" is not among the outputs task \"produce\" declares "
            "(outputs: [ORDERS]); list it under the task's `outputs:` to pass it on");
  EXPECT_EQ(Task(bad, "consume").state(), v1::TASK_SKIPPED);
}

TEST_F(ApiContract, AnEvaluatorMaySetOnlyTheKeysItDeclares) {
  StartAgent("a1");
  const std::string yaml =
      "name: judged\n"
      "tasks:\n"
      "  - id: judge\n"
      "    evaluator: true\n"
      "    outputs: [VERDICT]\n"
      "    shell: true\n"
      "    command: |\n"
      "      echo '{\"run\": [\"deploy\"], \"context\": {\"VERDICT\": \"ship\"EXTRA}}'\n"
      "  - id: deploy\n"
      "    depends_on: [judge]\n"
      "    shell: true\n"
      "    command: 'echo \"verdict=$VERDICT\"'\n";
  const std::string bad =
      Start(absl::StrReplaceAll(yaml, {{"EXTRA", ", \"HOME\": \"/tmp/evil\""}}));
  EXPECT_EQ(Wait(bad), v1::EXECUTION_FAILED);
  const v1::TaskRun judge = Task(bad, "judge");
  EXPECT_EQ(judge.state(), v1::TASK_FAILED);
  ASSERT_FALSE(judge.attempts().empty());
  EXPECT_TRUE(absl::StartsWith(judge.attempts(0).error(),
                               "evaluator output: key \"HOME\" is not among the outputs task "
                               "\"judge\" declares (outputs: [VERDICT])"))
      << judge.attempts(0).error();

  const std::string good = Start(absl::StrReplaceAll(yaml, {{"EXTRA", ""}}));
  EXPECT_EQ(Wait(good), v1::EXECUTION_SUCCEEDED);
  EXPECT_TRUE(absl::StrContains(Logs(good, "deploy"), "verdict=ship"));
}

TEST_F(ApiContract, ContextPassthroughIsTheExplicitOptInToTheOpenRule) {
  StartAgent("a1");
  v1::Execution execution;
  const grpc::Status status = StartYaml(
      "name: trusting\n"
      "context_passthrough: true\n"
      "tasks:\n"
      "  - {id: show, shell: true, command: 'echo \"pager=$PAGER\"'}\n",
      {{"PAGER", "cat"}}, &execution);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Wait(execution.name()), v1::EXECUTION_SUCCEEDED);
  EXPECT_TRUE(absl::StrContains(Logs(execution.name(), "show"), "pager=cat"));
  // The loader's variables stay refused even then.
  const grpc::Status loader =
      StartYaml("name: trusting\ncontext_passthrough: true\ntasks:\n  - {id: t, command: [echo]}\n",
                {{"LD_PRELOAD", "/tmp/evil.so"}}, &execution);
  EXPECT_EQ(loader.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// --- The CLI prints others' text without terminal controls ---

TEST_F(ApiContract, TheCliEscapesControlCharactersInReasons) {
  const std::string exec = Start("name: victim\ntasks:\n  - {id: t, command: [sleep, '30']}\n");
  auto [cancel_code, cancel_output] =
      Gyre({"cancel", exec, "--reason=\x1b]0;pwned\x07\x1b[2Jgone\nforged line"});
  EXPECT_EQ(cancel_code, 0) << cancel_output;
  EXPECT_FALSE(absl::StrContains(cancel_output, "\x1b")) << cancel_output;
  EXPECT_TRUE(absl::StrContains(cancel_output, "\\x1b]0;pwned\\x07\\x1b[2Jgone\\nforged line"))
      << cancel_output;
  auto [status_code, status_output] = Gyre({"status", exec});
  EXPECT_EQ(status_code, 0) << status_output;
  EXPECT_FALSE(absl::StrContains(status_output, "\x1b")) << status_output;
  EXPECT_FALSE(absl::StrContains(status_output, "\nforged line")) << status_output;
  EXPECT_TRUE(absl::StrContains(status_output, "(\\x1b]0;pwned")) << status_output;
}

// --- And a crash takes none of it back ---

TEST_F(ApiContract, EverythingAboveRecoversAfterKillNine) {
  StartAgent("a1");
  v1::Execution declared;
  ASSERT_TRUE(StartYaml(kDeclared, {}, &declared).ok());
  EXPECT_EQ(Wait(declared.name()), v1::EXECUTION_SUCCEEDED);
  // Paused while pending (no agent serves its queue yet), across the crash.
  const std::string paused =
      Start("name: held\ntasks:\n  - {id: t, command: [echo, held], queue: later}\n", {});
  v1::Execution result;
  ASSERT_TRUE(Control(paused, /*pause=*/true, &result).ok());
  // A result refused for an undeclared key: replayed, it is refused again.
  const std::string sneaky = Start(
      "name: sneaky\n"
      "tasks:\n"
      "  - id: produce\n"
      "    shell: true\n"
      "    command: 'echo \"{\\\"HOME\\\": \\\"/tmp/evil\\\"}\" > \"$GYRE_OUTPUT\"'\n"
      "  - {id: consume, depends_on: [produce], command: [echo]}\n");
  ASSERT_EQ(Wait(sneaky), v1::EXECUTION_FAILED);
  const std::string refusal = Task(sneaky, "produce").attempts(0).error();
  EXPECT_TRUE(absl::StrContains(refusal, "key \"HOME\" is not among the outputs")) << refusal;
  RestartOrchestrator(SIGKILL);
  AwaitReachable();
  EXPECT_EQ(Get(declared.name()).state(), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Get(sneaky).state(), v1::EXECUTION_FAILED);
  EXPECT_EQ(Task(sneaky, "produce").state(), v1::TASK_FAILED);
  EXPECT_EQ(Task(sneaky, "produce").attempts(0).error(), refusal);
  EXPECT_EQ(Task(declared.name(), "produce").outputs().fields().at("ORDERS").string_value(), "250");
  EXPECT_EQ(Get(paused).state(), v1::EXECUTION_PAUSED);
  ASSERT_TRUE(Control(paused, /*pause=*/false, &result).ok());
  EXPECT_EQ(result.state(), v1::EXECUTION_PENDING);
  StartAgent("a2", 1, {"--queues=[later]"});
  EXPECT_EQ(Wait(paused), v1::EXECUTION_SUCCEEDED);
  v1::Execution refused;
  EXPECT_EQ(StartYaml(kDeclared, {{"HOME", "/tmp/evil"}}, &refused).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT)
      << "the rule holds after recovery";
}

}  // namespace
}  // namespace gyre::e2e
