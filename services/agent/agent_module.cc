#include "services/agent/agent_module.h"

#include <grpcpp/create_channel.h>

#include <utility>

#include "absl/strings/str_join.h"
#include "libs/logging/logger.h"
#include "libs/server/api_service_module.h"
#include "prometheus/counter.h"
#include "services/agent/resource_detection.h"

namespace gyre::agent {
namespace {

// A family of counters named `name`, registered on `registry`.
prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                       const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

// The two counters of family `name` whose label `label` is `first` and
// `second`.
std::pair<prometheus::Counter*, prometheus::Counter*> CounterPair(
    prometheus::Registry& registry, const char* name, const char* help, const char* label,
    const char* first, const char* second) {
  prometheus::Family<prometheus::Counter>& family = CounterFamily(registry, name, help);
  return {&family.Add({{label, first}}), &family.Add({{label, second}})};
}

}  // namespace

absl::Status AgentModule::ValidateConfig() {
  absl::StatusOr<std::string> token = config_.JoinToken();
  if (!token.ok()) return token.status();
  join_token_ = *std::move(token);
  absl::StatusOr<std::vector<std::string>> entries =
      ParseOrchestratorAddresses(config_.orchestrator_address);
  if (!entries.ok()) return entries.status();
  orchestrator_entries_ = *std::move(entries);
  if (config_.orchestrator_resolve_interval < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError(
        "orchestrator_resolve_interval must be at least 100ms (it paces DNS lookups)");
  }
  return absl::OkStatus();
}

void AgentModule::SetMembers(const std::vector<OrchestratorMember>& members,
                             const security::TlsConfig& tls) {
  AgentClient::Orchestrators orchestrators;
  absl::flat_hash_map<std::string, std::shared_ptr<OrchestratorLink>> links;
  for (const OrchestratorMember& member : members) {
    std::shared_ptr<OrchestratorLink>& link = links[member.target];
    if (auto known = member_links_.find(member.target); known != member_links_.end()) {
      link = known->second;
    } else {
      absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
          NewOrchestratorChannel(member.target, tls, member.authority);
      if (!channel.ok()) {
        logging::Error("orchestrator channel not created",
                       {{"orchestrator", member.target}, {"error", channel.status().ToString()}});
        links.erase(member.target);
        continue;
      }
      link = NewGrpcOrchestratorLink(*channel, join_token_);
    }
    orchestrators.emplace_back(member.target, link);
  }
  member_links_ = std::move(links);
  client_->SetOrchestrators(std::move(orchestrators));
}

void AgentModule::OfferResources() {
  DetectionSources sources;
  sources.root = config_.detection_root;
  // A fake tree is a test's: the real machine's nvidia-smi would not match it.
  if (sources.root != "/") sources.nvidia_smi.clear();
  std::string cpu_from = "config";
  std::string memory_from = "config";
  std::string gpus_from = "config";
  if (config_.cpu <= 0) {
    const DetectedCpus cpus = DetectCpus(sources);
    config_.cpu = cpus.cpus;
    cpu_from = cpus.source;
  }
  if (config_.memory_bytes <= 0) {
    const DetectedMemory memory = DetectMemory(sources);
    config_.memory_bytes = memory.bytes;
    memory_from = memory.source;
  }
  if (config_.gpus <= 0 && config_.gpu_devices.empty()) {
    DetectedGpus gpus = DetectGpus(sources);
    config_.gpus = static_cast<int64_t>(gpus.devices.size());
    config_.gpu_devices = std::move(gpus.devices);
    gpus_from = gpus.source;
  }
  logging::Info("agent offers", {{"cpu", config_.cpu},
                                 {"cpu_from", cpu_from},
                                 {"memory_bytes", config_.memory_bytes},
                                 {"memory_from", memory_from},
                                 {"gpus", config_.gpus},
                                 {"gpu_devices", absl::StrJoin(GpuDeviceList(config_), ",")},
                                 {"gpus_from", gpus_from},
                                 {"slots", config_.slots},
                                 {"queues", absl::StrJoin(config_.queues, ",")}});
}

absl::Status AgentModule::AddServices(server::ServiceHost* host) {
  host->AddHealthName(server::ComponentHealthName("agent"));
  return absl::OkStatus();
}

absl::Status AgentModule::OnServing(server::ServiceHost* host) {
  // A root agent runs no task as root unless told it may.
  if (absl::StatusOr<std::optional<RunAs>> user = ResolveTaskUser(config_); !user.ok()) {
    return user.status();
  }
  // One IP address: the one stream, as before several orchestrators
  // existed (no resolver thread). Several, or a DNS name: one stream per
  // orchestrator, the names resolved again as members come and go.
  const bool members =
      link_ == nullptr &&
      (orchestrator_entries_.size() > 1 ||
       (orchestrator_entries_.size() == 1 && NeedsResolving(orchestrator_entries_.front())));
  if (link_ == nullptr && !members) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        NewOrchestratorChannel(orchestrator_entries_.front(), host->config().tls);
    if (!channel.ok()) return channel.status();
    link_ = NewGrpcOrchestratorLink(*channel, join_token_);
  }
  OfferResources();
  client_ = members ? std::make_unique<AgentClient>(config_, clock_)
                    : std::make_unique<AgentClient>(config_, link_, clock_);
  prometheus::Registry& registry = host->metrics_registry();
  client_->set_oom_kill_counter(&CounterFamily(registry, "gyre_agent_tasks_oom_killed_total",
                                               "Task attempts ended by the kernel's OOM killer "
                                               "(their cgroup's memory limit was reached)")
                                     .Add({}));
  auto [refused, dropped] = CounterPair(
      registry, "gyre_agent_results_rerouted_total",
      "Task results an orchestrator refused (it does not own the execution's shard) and that "
      "were sent on to another, by what became of them: refused (each refusal), dropped (too "
      "many held at once)",
      "event", "refused", "dropped");
  client_->set_result_counters(refused, dropped);
  auto [sent, in_result] = CounterPair(
      registry, "gyre_agent_task_starts_total",
      "Task processes started, by how the start reached the orchestrator: sent (a TaskStarted, "
      "once the task ran start_report_delay), in_result (the task ended sooner: its result "
      "alone)",
      "report", "sent", "in_result");
  client_->set_start_counters(sent, in_result);
  auto [shared, copied] = CounterPair(
      registry, "gyre_agent_task_spawns_total",
      "Task processes spawned, by how much of the agent's descriptor table the child copied: "
      "shared (a few low descriptors, the usual way), copied (the whole table: more children "
      "were starting at once than the agent keeps descriptor groups for)",
      "descriptors", "shared", "copied");
  client_->set_spawn_counters(shared, copied);
  if (members) {
    const security::TlsConfig tls = host->config().tls;
    resolver_ = std::make_unique<OrchestratorResolver>(
        orchestrator_entries_, config_.orchestrator_resolve_interval,
        [this, tls](const std::vector<OrchestratorMember>& found) { SetMembers(found, tls); });
    resolver_->Start();
  }
  client_->Start();
  return absl::OkStatus();
}

void AgentModule::OnShutdown(absl::Duration grace) {
  resolver_.reset();  // no member changes while draining
  if (client_ != nullptr) client_->Drain(grace);
  client_.reset();
}

}  // namespace gyre::agent
