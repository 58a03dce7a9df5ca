#include "services/orchestrator/agent_manager.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "services/orchestrator/proto_time.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// Agent ids are [a-z0-9-]: they appear in resource names ("agents/{id}"),
// attempt records, log lines and working directories.
bool ValidAgentId(absl::string_view id) {
  return !id.empty() && id.size() <= AgentManager::kMaxAgentIdLength &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
         });
}

}  // namespace

std::string QuoteAgentText(absl::string_view text) {
  constexpr size_t kQuoted = 80;
  if (text.size() <= kQuoted) return absl::StrCat("\"", absl::CHexEscape(text), "\"");
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kQuoted)), "\"... (", text.size(),
                      " bytes)");
}

v1::OrchestratorMessage CancelMessage(v1::AttemptRef ref) {
  v1::OrchestratorMessage cancel;
  *cancel.mutable_cancel()->mutable_ref() = std::move(ref);
  *cancel.mutable_cancel()->mutable_grace() = ToProto(absl::Seconds(10));
  return cancel;
}

bool AgentEntry::matches(const google::protobuf::Map<std::string, std::string>& selector) const {
  for (const auto& [key, value] : selector) {
    auto label = registration.labels().find(key);
    if (label == registration.labels().end() || label->second != value) return false;
  }
  return true;
}

bool AgentEntry::offers(const v1::Resources& need) const {
  const v1::Resources& offer = registration.resources();
  return (offer.cpu() <= 0 || need.cpu() <= offer.cpu() + 1e-9) &&
         (offer.memory_bytes() <= 0 || need.memory_bytes() <= offer.memory_bytes()) &&
         need.gpus() <= offer.gpus();
}

const v1::Resources& AgentManager::CappedPrediction(const AgentEntry& agent,
                                                    const TaskPrediction& prediction,
                                                    v1::Resources& scratch) {
  const v1::Resources& offer = agent.registration.resources();
  scratch.set_cpu(offer.cpu() > 0 ? std::min(prediction.placement.cpu(), offer.cpu())
                                  : prediction.placement.cpu());
  scratch.set_memory_bytes(offer.memory_bytes() > 0
                               ? std::min(prediction.placement.memory_bytes(), offer.memory_bytes())
                               : prediction.placement.memory_bytes());
  scratch.set_gpus(0);
  return scratch;
}

absl::Status AgentManager::CheckAttemptRef(const v1::AttemptRef& ref, absl::string_view where) {
  if (ref.attempt() < 1 || ref.attempt() > kMaxAttempt) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": attempt ", ref.attempt(), " of ", QuoteAgentText(ref.execution()), " task ",
        QuoteAgentText(ref.task_id()), " is out of range [1, ", kMaxAttempt, "]"));
  }
  return absl::OkStatus();
}

absl::Status AgentManager::CheckAttemptRefs(
    const google::protobuf::RepeatedPtrField<v1::AttemptRef>& refs, absl::string_view where) {
  if (refs.size() > kMaxAttemptRefs) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", refs.size(), " attempts listed; at most ", kMaxAttemptRefs));
  }
  for (const v1::AttemptRef& ref : refs) {
    if (absl::Status status = CheckAttemptRef(ref, where); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status AgentManager::CheckRegistration(const v1::Register& registration) {
  const std::string& id = registration.agent_id();
  if (!ValidAgentId(id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "register: invalid agent_id ", QuoteAgentText(id),
        " (lower-case letters, digits and '-'; 1 to ", kMaxAgentIdLength, " characters)"));
  }
  if (registration.slots() < 1 || registration.slots() > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("register: slots ", registration.slots(), " is out of range [1, 4096]"));
  }
  if (registration.queues().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("register: agent ", id, " must serve at least one queue"));
  }
  if (registration.queues_size() > kMaxQueuesPerAgent) {
    return absl::InvalidArgumentError(absl::StrCat("register: agent ", id, " lists ",
                                                   registration.queues_size(), " queues; at most ",
                                                   kMaxQueuesPerAgent));
  }
  for (const std::string& queue : registration.queues()) {
    if (queue.empty() || queue.size() > kMaxQueueNameLength) {
      return absl::InvalidArgumentError(absl::StrCat("register: agent ", id, ": queue name ",
                                                     QuoteAgentText(queue), " must be 1 to ",
                                                     kMaxQueueNameLength, " characters"));
    }
  }
  if (registration.labels_size() > kMaxAgentLabels) {
    return absl::InvalidArgumentError(absl::StrCat("register: agent ", id, " has ",
                                                   registration.labels_size(), " labels; at most ",
                                                   kMaxAgentLabels));
  }
  for (const auto& [key, value] : registration.labels()) {
    if (key.empty() || key.size() > kMaxLabelLength || value.size() > kMaxLabelLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          "register: agent ", id, ": label ", QuoteAgentText(key), "=", QuoteAgentText(value),
          ": keys must be 1 to ", kMaxLabelLength, " characters, values up to ", kMaxLabelLength));
    }
  }
  if (registration.initial_credit() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("register: agent ", id, ": initial_credit ",
                                                   registration.initial_credit(), " is negative"));
  }
  if (absl::Status status =
          CheckAttemptRefs(registration.running(), absl::StrCat("register: agent ", id));
      !status.ok()) {
    return status;
  }
  return CheckAttemptRefs(registration.running_elsewhere(),
                          absl::StrCat("register: agent ", id, ": running_elsewhere"));
}

absl::StatusOr<AgentEntry*> AgentManager::Register(const v1::Register& registration,
                                                   std::shared_ptr<AgentChannel> channel,
                                                   absl::Time now, bool* reconnected,
                                                   std::string* took_over) {
  const std::string& id = registration.agent_id();
  auto existing = agents_.find(id);
  const bool reconnect = existing != agents_.end();
  *reconnected = reconnect;
  std::vector<const std::string*> new_names;
  new_names.reserve(static_cast<size_t>(registration.queues_size()));
  for (const std::string& queue : registration.queues()) new_names.push_back(&queue);
  if (absl::Status room = queues_.CheckRoom(new_names, absl::StrCat("register: agent ", id));
      !room.ok()) {
    return room;
  }
  if (reconnect && existing->second->channel != nullptr) {
    // An id belongs to one live stream. A second registration while the
    // first stream is alive is an impostor or a misconfigured twin: merging
    // it would hand the real agent's leases to it and leave the real agent
    // connected, heartbeating and never given work again. But a network cut
    // can leave the old stream half-open here for a long time: once it has
    // been silent past two heartbeat intervals (the agent sends one each
    // interval), the newcomer is taken to be the agent reconnecting, and the
    // old stream is told and closed. (At least half a second: with short
    // intervals, a busy machine's scheduling delays alone would let an
    // impostor in.)
    AgentEntry& current = *existing->second;
    const absl::Duration silent = now - current.last_seen;
    const absl::Duration live_within = std::max(2 * heartbeat_interval_, absl::Milliseconds(500));
    if (silent <= live_within) {
      return absl::FailedPreconditionError(absl::StrCat(
          "register: agent id ", id, " is connected on another stream since ",
          absl::FormatTime(current.connected_since), " (last heard ",
          absl::ToInt64Milliseconds(silent),
          " ms ago); an agent id belongs to one live stream: use another id, or stop the "
          "other agent (a stream silent for over ",
          absl::ToInt64Milliseconds(live_within), " ms is replaced)"));
    }
    *took_over = absl::StrCat("agent id ", id,
                              " registered again on another stream after this one was silent for ",
                              absl::ToInt64Milliseconds(silent), " ms");
    current.channel->Replace(*took_over);
    current.channel = nullptr;
  }
  auto& known = agents_[id];
  if (!reconnect) known = std::make_unique<AgentEntry>();
  AgentEntry& agent = *known;
  agent.id = id;
  agent.registration = registration;
  agent.channel = std::move(channel);
  agent.acks = std::make_shared<ResultAcks>(agent.channel);
  agent.credit =
      registration.initial_credit() > 0 ? registration.initial_credit() : registration.slots();
  agent.draining = false;
  agent.last_seen = now;
  agent.connected_since = now;
  SetQueues(agent, &registration.queues());
  agent.free_cpu = registration.resources().cpu() > 0 ? registration.resources().cpu() : 1e9;
  agent.free_memory = registration.resources().memory_bytes() > 0
                          ? registration.resources().memory_bytes()
                          : std::numeric_limits<int64_t>::max() / 2;
  agent.free_gpus = registration.resources().gpus();
  return &agent;
}

AgentEntry& AgentManager::KnownByLease(const std::string& id, absl::Time now) {
  std::unique_ptr<AgentEntry>& agent = agents_[id];
  if (agent == nullptr) {
    agent = std::make_unique<AgentEntry>();
    agent->id = id;
    agent->last_seen = now;
  }
  return *agent;
}

AgentEntry* AgentManager::Find(const std::string& id) {
  auto it = agents_.find(id);
  return it == agents_.end() ? nullptr : it->second.get();
}

void AgentManager::Remove(const std::string& id) {
  auto it = agents_.find(id);
  if (it == agents_.end()) return;
  SetQueues(*it->second, nullptr);
  agents_.erase(it);
}

void AgentManager::Disconnect(AgentEntry& agent) {
  agent.channel = nullptr;
  agent.credit = 0;
}

void AgentManager::Reserve(AgentEntry& agent, const v1::Resources& need) {
  agent.free_cpu -= need.cpu();
  agent.free_memory -= need.memory_bytes();
  agent.free_gpus -= need.gpus();
}

void AgentManager::Unreserve(AgentEntry& agent, const v1::Resources& need) {
  agent.free_cpu += need.cpu();
  agent.free_memory += need.memory_bytes();
  agent.free_gpus += need.gpus();
}

void AgentManager::SetQueues(AgentEntry& agent,
                             const google::protobuf::RepeatedPtrField<std::string>* names) {
  std::vector<uint32_t> previous;
  previous.swap(agent.queues);
  if (names != nullptr) {
    for (const std::string& name : *names) {
      const uint32_t index = queues_.IndexOf(name);
      if (agent.serves(index)) continue;  // listed twice
      agent.queues.push_back(index);
      queues_.at(index).agents++;
    }
  }
  for (uint32_t index : previous) queues_.Unserve(index);
}

std::vector<v1::AgentInfo> AgentManager::List() const {
  std::vector<v1::AgentInfo> result;
  for (const auto& [id, agent] : agents_) {
    v1::AgentInfo info;
    info.set_name("agents/" + id);
    info.set_display_name(agent->registration.display_name());
    *info.mutable_queues() = agent->registration.queues();
    *info.mutable_labels() = agent->registration.labels();
    *info.mutable_resources() = agent->registration.resources();
    info.set_slots(agent->registration.slots());
    info.set_free_slots(agent->free_slots());
    info.set_state(agent->channel == nullptr ? v1::AgentInfo::DISCONNECTED
                   : agent->draining         ? v1::AgentInfo::DRAINING
                                             : v1::AgentInfo::CONNECTED);
    *info.mutable_last_heartbeat_time() = ToProto(agent->last_seen);
    info.set_version(agent->registration.version());
    result.push_back(std::move(info));
  }
  return result;
}

std::pair<int64_t, int64_t> AgentManager::ConnectedAndFreeSlots() const {
  int64_t connected = 0;
  int64_t free_slots = 0;
  for (const auto& [id, agent] : agents_) {
    if (agent->channel == nullptr) continue;
    connected++;
    free_slots += agent->free_slots();
  }
  return {connected, free_slots};
}

}  // namespace gyre::orchestrator
