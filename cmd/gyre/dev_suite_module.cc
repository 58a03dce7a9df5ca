#include "cmd/gyre/dev_suite_module.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <thread>

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cmd/gyre/in_process_agent_link.h"
#include "cmd/gyre/run_command.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "libs/logging/logger.h"
#include "libs/security/grpc_credentials.h"
#include "libs/server/api_service_module.h"
#include "services/agent/agent_module.h"
#include "services/gateway/api_key_authenticator.h"
#include "services/gateway/gateway_module.h"
#include "services/optimizer/optimizer_module.h"
#include "services/orchestrator/orchestrator_module.h"
#include "services/predictor/predictor_module.h"
#include "services/scheduler/scheduler_service.h"

namespace gyre::cli {

// The component modules, owned together so their order is explicit.
class DevSuiteModule::Components {
 public:
  orchestrator::OrchestratorModule orchestrator;
  agent::AgentModule agent;
  server::ApiServiceModule scheduler{std::make_unique<scheduler::SchedulerServiceImpl>(),
                                     "gyre.v1.SchedulerService", "scheduler",
                                     scheduler::SchedulerServiceImpl::ImplementedRpcs()};
  optimizer::OptimizerModule optimizer;
  predictor::PredictorModule predictor;
  gateway::GatewayModule gateway;

  // Start order: the orchestrator first, its clients (agent, gateway) last.
  std::vector<server::ServiceModule*> InStartOrder() {
    return {&orchestrator, &scheduler, &optimizer, &predictor, &agent, &gateway};
  }
};

const std::vector<std::string>& DevComponents() {
  static const auto* components = new std::vector<std::string>{
      "orchestrator", "scheduler", "optimizer", "predictor", "agent", "gateway"};
  return *components;
}

std::vector<std::string> DevFlagNames() {
  server::ServerConfig server_config;
  DevSuiteModule module;
  config::ConfigSchema schema;
  server_config.Register(&schema);
  module.RegisterConfig(&schema);
  std::vector<std::string> flags = {"--config="};
  for (const std::string& key : schema.Keys()) {
    flags.push_back(absl::StrCat("--", key, schema.Find(key)->boolean ? "" : "="));
  }
  flags.emplace_back("--help");
  return flags;
}

DevSuiteModule::DevSuiteModule() : components_(std::make_unique<Components>()) {}
DevSuiteModule::~DevSuiteModule() {
  if (run_thread_.joinable()) run_thread_.join();
}

void DevSuiteModule::RegisterConfig(config::ConfigSchema* schema) {
  schema->AddString("data_dir", &config_.data_dir, "directory of the embedded durable store");
  schema->AddChoice("store", &config_.store, {"embedded", "postgres"}, "state store backend");
  schema->AddString("postgres_dsn", &config_.postgres_dsn,
                    "libpq connection string of the postgres store (password apart)");
  schema->AddString("postgres_password_file", &config_.postgres_password_file,
                    "file holding the postgres password (or env GYRE_POSTGRES_PASSWORD)");
  schema->AddListenAddress("http_address", &config_.http_address, "REST/WebSocket listen address");
  schema->AddInt("agent_slots", &config_.agent_slots, 0, 4096,
                 "task slots of the embedded agent (0: one per CPU core)");
  schema->AddString("run", &config_.run, "workflow file to run once the suite is up");
  schema->AddString("task_library_dir", &config_.task_library_dir,
                    "directory of task-library YAML files (for gyre schedule)");
  schema->AddString("dev_api_key", &config_.dev_api_key,
                    "admin API key of the REST API (generated and printed when empty)");
  // The embedded orchestrator's and agent's own settings (lease_timeout,
  // worker_pools, fsync, max_output_bytes, queues, ...), under their own
  // names, so that whatever a deployment sets can be tried in dev. Left out:
  // what gyre dev decides for its components itself (the agent is linked
  // in-process, works under data_dir, has a fixed id and runs the
  // developer's tasks as the developer).
  config::ConfigSchema components;
  components_->orchestrator.RegisterConfig(&components);
  components_->agent.RegisterConfig(&components);
  schema->AddAllFrom(components,
                     {"orchestrator_address", "id", "slots", "work_dir", "allow_root_tasks",
                      "join_token", "join_token_file", "agent_join_token_hashes"});
}

absl::Status DevSuiteModule::ValidateConfig() {
  if (config_.data_dir.empty()) return absl::InvalidArgumentError("data_dir: must not be empty");
  components_->orchestrator.mutable_config().data_dir = config_.data_dir;
  components_->orchestrator.mutable_config().store = config_.store;
  components_->orchestrator.mutable_config().postgres_dsn = config_.postgres_dsn;
  components_->orchestrator.mutable_config().postgres_password_file =
      config_.postgres_password_file;
  components_->orchestrator.mutable_config().task_library_dir = config_.task_library_dir;
  // Loads the task library: a bad one stops the start, as it does the
  // orchestrator's.
  if (absl::Status status = components_->orchestrator.ValidateConfig(); !status.ok()) {
    return status;
  }
  components_->predictor.mutable_config().data_dir = absl::StrCat(config_.data_dir, "/predictor");
  // On PostgreSQL the model is kept beside the state (table
  // predictor_models), as a deployed gyre-predictor with that store does.
  components_->predictor.mutable_config().store = config_.store;
  components_->predictor.mutable_config().postgres_dsn = config_.postgres_dsn;
  components_->predictor.mutable_config().postgres_password_file = config_.postgres_password_file;
  // Reads the password (GYRE_POSTGRES_PASSWORD or the file) as a deployed
  // gyre-predictor's start does.
  if (absl::Status status = components_->predictor.ValidateConfig(); !status.ok()) return status;
  agent::AgentConfig& agent = components_->agent.mutable_config();
  agent.work_dir = absl::StrCat(config_.data_dir, "/work");
  // The same id at every start: tasks the last run left in flight are
  // re-queued as soon as the new embedded agent (which runs none of them)
  // registers, not after the lease timeout.
  agent.id = "embedded";
  // `gyre dev` runs the developer's own workflows as the developer, even
  // as root (a container's default user).
  agent.allow_root_tasks = true;
  agent.slots = config_.agent_slots > 0 ? config_.agent_slots
                                        : std::max<int64_t>(1, std::thread::hardware_concurrency());
  components_->gateway.mutable_config().http_address = config_.http_address;
  // One developer on a laptop: no rate limit (a deployed gateway has one).
  components_->gateway.mutable_config().rate_limit_per_minute = 0;
  if (config_.dev_api_key.empty()) {
    absl::StatusOr<std::string> key = gateway::ApiKeyAuthenticator::GenerateKey();
    if (!key.ok()) return key.status();
    config_.dev_api_key = *std::move(key);
    generated_api_key_ = true;
  }
  components_->gateway.AddAdminKey(config_.dev_api_key, "dev");
  return components_->gateway.ValidateConfig();
}

absl::Status DevSuiteModule::AddServices(server::ServiceHost* host) {
  for (server::ServiceModule* module : components_->InStartOrder()) {
    if (absl::Status status = module->AddServices(host); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status DevSuiteModule::OnServing(server::ServiceHost* host) {
  // The embedded agent talks to the engine directly: no network hop, no
  // serialization.
  components_->agent.set_orchestrator_link(
      NewInProcessAgentLink(components_->orchestrator.engine()));
  absl::StatusOr<std::shared_ptr<grpc::Channel>> loopback =
      security::NewChannel(absl::StrCat("127.0.0.1:", host->grpc_port()), host->config().tls);
  if (!loopback.ok()) return loopback.status();
  components_->gateway.set_orchestrator_channel(host->InProcessChannel(), *std::move(loopback));
  components_->optimizer.set_orchestrator_channel(host->InProcessChannel());
  components_->optimizer.set_predictor_channel(host->InProcessChannel());
  components_->gateway.set_optimizer_channel(host->InProcessChannel());
  components_->gateway.set_predictor_channel(host->InProcessChannel());
  for (server::ServiceModule* module : components_->InStartOrder()) {
    if (absl::Status status = module->OnServing(host); !status.ok()) return status;
  }
  if (absl::Status status = ReportHealth(host); !status.ok()) return status;
  PrintApiAccess();
  if (!config_.run.empty()) {
    RunOptions options;
    options.workflow_file = config_.run;
    options.interactive = isatty(STDOUT_FILENO) != 0;
    run_thread_ = std::thread([options, channel = host->InProcessChannel()] {
      const int code = RunWorkflow(channel, options);
      logging::Info(code == kRunSucceeded
                        ? "example workflow succeeded; still serving (Ctrl-C stops)"
                        : "example workflow did not succeed; still serving",
                    {{"workflow_file", options.workflow_file}, {"exit_code", code}});
    });
  }
  return absl::OkStatus();
}

std::string DevSuiteModule::BoundHttpAddress() const {
  // The configured host with the port really bound (":0" asks for any).
  const absl::string_view configured = config_.http_address;
  const size_t colon = configured.rfind(':');
  return absl::StrCat("http://", configured.substr(0, colon), ":",
                      components_->gateway.http_port());
}

absl::Status DevSuiteModule::ReportHealth(server::ServiceHost* host) {
  // Asked over gRPC, as any client would, rather than trusting our own flags.
  auto health = grpc::health::v1::Health::NewStub(host->InProcessChannel());
  std::vector<std::string> serving;
  for (const std::string& component : DevComponents()) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(server::ComponentHealthName(component));
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status = health->Check(&context, request, &response);
    if (!status.ok() || response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::UnavailableError(absl::StrCat(component, " is not serving"));
    }
    serving.push_back(component);
  }
  logging::Announce("gyre dev is up", {{"serving", absl::StrJoin(serving, ",")},
                                       {"healthy", static_cast<int>(serving.size())},
                                       {"grpc_port", host->grpc_port()},
                                       {"http", BoundHttpAddress()},
                                       {"metrics_port", host->metrics_port()},
                                       {"data_dir", config_.data_dir}});
  return absl::OkStatus();
}

void DevSuiteModule::PrintApiAccess() {
  const std::string url =
      absl::StrCat("http://127.0.0.1:", components_->gateway.http_port(), "/api/v1/executions");
  // To the terminal, not the JSON log: the key is a secret that log
  // shippers must not collect; a generated one is printed once, so the
  // developer can use it.
  if (generated_api_key_) {
    std::fprintf(stdout,
                 "REST API: %s (admin API key generated for this run; set dev_api_key, "
                 "GYRE_DEV_API_KEY or --dev_api_key to choose one)\n"
                 "  curl -H 'X-API-Key: %s' %s\n",
                 url.c_str(), config_.dev_api_key.c_str(), url.c_str());
  } else {
    std::fprintf(stdout,
                 "REST API: %s (admin API key from dev_api_key)\n"
                 "  curl -H \"X-API-Key: $GYRE_DEV_API_KEY\" %s\n",
                 url.c_str(), url.c_str());
  }
  std::fflush(stdout);
  config_.dev_api_key.clear();
}

void DevSuiteModule::OnShutdown(absl::Duration grace) {
  std::vector<server::ServiceModule*> modules = components_->InStartOrder();
  for (auto it = modules.rbegin(); it != modules.rend(); ++it) (*it)->OnShutdown(grace);
}

void DevSuiteModule::OnStopped() {
  std::vector<server::ServiceModule*> modules = components_->InStartOrder();
  for (auto it = modules.rbegin(); it != modules.rend(); ++it) (*it)->OnStopped();
}

}  // namespace gyre::cli
