#include "services/orchestrator/scheduler_link.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/arena.h"
#include "libs/logging/logger.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

SchedulerLink::SchedulerLink(std::shared_ptr<grpc::Channel> channel, Options options, Engine engine,
                             prometheus::Registry* metrics)
    : options_(options),
      engine_(std::move(engine)),
      stub_(v1::SchedulerService::NewStub(std::move(channel))) {
  if (metrics == nullptr) return;
  auto& calls = prometheus::BuildCounter()
                    .Name("gyre_scheduler_link_calls_total")
                    .Help("RankAndPlace calls to gyre-scheduler, by outcome.")
                    .Register(*metrics);
  calls_ok_ = &calls.Add({{"outcome", "ok"}});
  calls_failed_ = &calls.Add({{"outcome", "failed"}});
  reordered_ = &prometheus::BuildCounter()
                    .Name("gyre_scheduler_link_reordered_tasks_total")
                    .Help("Ready tasks queued again in the scheduler's order.")
                    .Register(*metrics)
                    .Add({});
  latency_ = &prometheus::BuildHistogram()
                  .Name("gyre_scheduler_link_call_seconds")
                  .Help("RankAndPlace round trips to gyre-scheduler, failed ones included.")
                  .Register(*metrics)
                  .Add({}, prometheus::Histogram::BucketBoundaries{
                               0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
}

SchedulerLink::~SchedulerLink() { Stop(); }

void SchedulerLink::Start() {
  thread_ = std::thread([this] { Run(); });
}

void SchedulerLink::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (in_flight_ != nullptr) in_flight_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void SchedulerLink::Wake() {
  // The dispatch path calls this after every pass that leaves a backlog:
  // one atomic exchange when a round is already due.
  if (pending_.exchange(true, std::memory_order_acq_rel)) return;
  absl::MutexLock lock(&mu_);  // releasing it re-evaluates Run's Await
}

void SchedulerLink::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &SchedulerLink::RoundDueOrStopping));
      if (stop_) return;
    }
    pending_.store(false, std::memory_order_release);
    Round();
    // Coalesce: whatever changes meanwhile is ranked in one round after.
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.min_interval);
    if (stop_) return;
  }
}

bool SchedulerLink::RoundDueOrStopping() const {
  return stop_ || pending_.load(std::memory_order_acquire);
}

void SchedulerLink::Round() {
  // The batch and the answer on one arena, dropped whole: a batch is
  // thousands of sub-messages each way (and the request is built under the
  // engine lock, where fewer mallocs is a shorter hold).
  google::protobuf::Arena arena;
  auto& request = *google::protobuf::Arena::CreateMessage<v1::RankAndPlaceRequest>(&arena);
  auto& response = *google::protobuf::Arena::CreateMessage<v1::RankAndPlaceResponse>(&arena);
  std::vector<BatchedTask> tasks;
  if (!engine_.take_batch(options_.max_batch_tasks, &request, &tasks)) return;

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    in_flight_ = &context;
  }
  grpc::Status status;
  absl::Notification done;
  const absl::Time start = absl::Now();
  stub_->async()->RankAndPlace(&context, &request, &response, [&](grpc::Status result) {
    status = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  {
    absl::MutexLock lock(&mu_);
    in_flight_ = nullptr;
  }
  if (latency_ != nullptr) latency_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  if (!status.ok()) {
    if (calls_failed_ != nullptr) calls_failed_->Increment();
    if (!failing_) {
      logging::Warn(
          "scheduler did not answer; ready tasks keep the local order",
          {{"code", static_cast<int64_t>(status.error_code())}, {"error", status.error_message()}});
    }
    failing_ = true;
    return;
  }
  if (calls_ok_ != nullptr) calls_ok_->Increment();
  if (failing_) logging::Info("scheduler answers again");
  failing_ = false;

  // Placed and unplaced tasks share one rank sequence: the dispatch order.
  absl::flat_hash_map<absl::string_view, uint32_t> index_of;
  index_of.reserve(request.tasks_size());
  for (int i = 0; i < request.tasks_size(); ++i) {
    index_of.emplace(request.tasks(i).task_run(), static_cast<uint32_t>(i));
  }
  std::vector<std::pair<int32_t, uint32_t>> ranked;
  ranked.reserve(request.tasks_size());
  // By batch index: the placement (a hint) and the aged priority.
  std::vector<TaskAnswer> answers(tasks.size());
  for (const v1::Placement& placed : response.placements()) {
    if (auto it = index_of.find(placed.task_run()); it != index_of.end()) {
      ranked.emplace_back(placed.rank(), it->second);
      if (it->second >= answers.size()) continue;
      if (absl::StartsWith(placed.agent(), "agents/")) {
        answers[it->second].agent_id = placed.agent().substr(7);
      }
      answers[it->second].effective_priority = placed.effective_priority();
    }
  }
  for (const v1::Unplaced& waiting : response.unplaced()) {
    if (auto it = index_of.find(waiting.task_run()); it != index_of.end()) {
      ranked.emplace_back(waiting.rank(), it->second);
      if (it->second < answers.size()) {
        answers[it->second].effective_priority = waiting.effective_priority();
      }
    }
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<uint32_t> order;
  order.reserve(ranked.size());
  for (const auto& [rank, index] : ranked) order.push_back(index);
  const size_t applied = engine_.apply(tasks, order, answers);
  if (reordered_ != nullptr) reordered_->Increment(static_cast<double>(applied));
}

}  // namespace gyre::orchestrator
