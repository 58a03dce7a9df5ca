#include "services/orchestrator/event_publisher.h"

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "services/orchestrator/proto_time.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

void EventPublisher::WatchAll(std::shared_ptr<EventSubscription> subscription) {
  watchers_.emplace_back("", std::move(subscription));
}

void EventPublisher::Subscribe(const ExecutionEntry& exec, int64_t from_sequence,
                               const std::shared_ptr<EventSubscription>& subscription,
                               EventSubscription::Replayer replay) {
  const auto first = static_cast<uint32_t>(
      std::min<int64_t>(std::max<int64_t>(1, from_sequence) - 1, exec.events.size()));
  const auto end = static_cast<uint32_t>(exec.events.size());
  // Live events extend the backlog: the subscription builds them all.
  subscription->SetBacklog(first, end, std::move(replay));
  if (exec.final()) {
    subscription->Close();
  } else {
    watchers_.emplace_back(exec.name(), subscription);
  }
}

void EventPublisher::Unwatch(const std::shared_ptr<EventSubscription>& subscription) {
  std::erase_if(watchers_, [&](const auto& entry) { return entry.second == subscription; });
}

void EventPublisher::End(const ExecutionEntry& exec, const absl::Status& why) {
  const std::string& name = exec.name();
  for (const auto& [scope, subscription] : watchers_) {
    if (scope == name) subscription->End(why);
  }
  std::erase_if(watchers_, [&](const auto& entry) { return entry.first == name; });
}

std::vector<std::shared_ptr<EventSubscription>> EventPublisher::TakeWatchAll() {
  std::vector<std::shared_ptr<EventSubscription>> taken;
  for (const auto& [scope, subscription] : watchers_) {
    if (scope.empty()) taken.push_back(subscription);
  }
  std::erase_if(watchers_, [](const auto& entry) { return entry.first.empty(); });
  return taken;
}

void EventPublisher::RestoreWatchAll(std::vector<std::shared_ptr<EventSubscription>> watchers) {
  for (std::shared_ptr<EventSubscription>& subscription : watchers) {
    watchers_.emplace_back("", std::move(subscription));
  }
}

void EventPublisher::Publish(const ExecutionEntry& exec, uint32_t index, bool closing) {
  const std::string& name = exec.name();
  absl::InlinedVector<EventSubscription*, 4> audience;
  for (const auto& [scope, subscription] : watchers_) {
    if (scope.empty() || scope == name) audience.push_back(subscription.get());
  }
  std::shared_ptr<const v1::Event> built;
  for (EventSubscription* subscription : audience) {
    if (subscription->follows_one_execution()) {
      // Its own thread builds the event, as it does the history.
      subscription->Extend(index + 1);
    } else {
      // Built only if somebody watches, and once for all of them (a build
      // per watcher, under the engine lock, made many watchers stall it).
      if (built == nullptr) {
        EventSource source;
        CollectEvent(exec, index, nullptr, &source);
        built.reset(BuildEvent(exec, source, nullptr));
      }
      subscription->Push(built);
    }
  }
  if (closing) {
    for (const auto& [scope, subscription] : watchers_) {
      if (scope == name) subscription->Close();
    }
    std::erase_if(watchers_, [&](const auto& entry) { return entry.first == name; });
  }
}

void EventPublisher::PublishLog(const ExecutionEntry& exec, const v1::TaskLogChunk& chunk,
                                absl::Time now) {
  std::shared_ptr<v1::Event> event;  // built once, if anybody wants it
  for (const auto& [scope, subscription] : watchers_) {
    if (!subscription->include_logs() || (!scope.empty() && scope != exec.name())) continue;
    if (event == nullptr) {
      event = std::make_shared<v1::Event>();
      event->set_type(v1::Event::TASK_LOG);
      event->set_execution(exec.name());
      *event->mutable_time() = ToProto(now);
      event->mutable_log()->set_task_id(chunk.ref().task_id());
      event->mutable_log()->set_attempt(chunk.ref().attempt());
      *event->mutable_log()->mutable_chunk() = chunk.chunk();
    }
    subscription->Push(event);
  }
}

void CollectEvent(const ExecutionEntry& exec, uint32_t index, google::protobuf::Arena* arena,
                  EventSource* source) {
  const StoredEvent& stored = exec.events[index];
  source->index = index;
  source->stored = stored;
  source->whole = nullptr;
  source->has_reason = false;
  source->has_attempt = false;
  if (stored.task == StoredEvent::kExecutionLevel) {
    // A few per execution: built here, whole.
    source->whole = google::protobuf::Arena::CreateMessage<v1::Event>(arena);
    source->whole->CopyFrom(exec.whole_events.at(index));
    return;
  }
  const TaskEntry& task = exec.tasks[stored.task];
  source->spec = task.spec;
  if (auto reason = exec.event_reasons.find(index); reason != exec.event_reasons.end()) {
    source->has_reason = true;
    source->reason = reason->second;
  }
  if (IsTerminal(static_cast<v1::TaskState>(stored.state)) && stored.attempts > 0 &&
      stored.attempts <= task.attempts.size()) {
    source->has_attempt = true;
    source->attempt = task.attempts[stored.attempts - 1];
  }
}

v1::Event* BuildEvent(const ExecutionEntry& exec, const EventSource& source,
                      google::protobuf::Arena* arena) {
  if (source.whole != nullptr) return source.whole;
  auto* event = google::protobuf::Arena::CreateMessage<v1::Event>(arena);
  event->set_execution(exec.name());
  event->set_sequence(static_cast<int64_t>(source.index) + 1);
  *event->mutable_time() = ToProto(absl::FromUnixNanos(source.stored.unix_nanos));
  event->set_type(v1::Event::TASK_STATE_CHANGED);
  v1::TaskRun* run = event->mutable_task_run();
  run->set_name(absl::StrCat(exec.name(), "/tasks/", source.spec->id()));
  run->set_task_id(source.spec->id());
  run->set_state(static_cast<v1::TaskState>(source.stored.state));
  if (source.has_reason) run->set_reason(source.reason);
  if (source.has_attempt) FillProto(source.attempt, run->add_attempts());
  return event;
}

}  // namespace gyre::orchestrator
