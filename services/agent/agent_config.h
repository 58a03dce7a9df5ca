#ifndef GYRE_SERVICES_AGENT_AGENT_CONFIG_H_
#define GYRE_SERVICES_AGENT_AGENT_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/config/config_schema.h"
#include "services/agent/process_spawn.h"

namespace gyre::agent {

// Settings of an agent (worker) beyond the common server ones.
struct AgentConfig {
  // Orchestrator gRPC addresses the agent connects to: one host:port, or
  // several comma-separated (dns:///host:port accepted). A DNS name stands
  // for all its addresses (a headless Service: one per orchestrator pod),
  // resolved again every orchestrator_resolve_interval; one stream each
  // (orchestrator_members.h). One IP address: the one stream, as always.
  std::string orchestrator_address = "127.0.0.1:50051";
  // How often DNS names in orchestrator_address are resolved again, so that
  // orchestrators that join are connected and those that leave dropped.
  absl::Duration orchestrator_resolve_interval = absl::Seconds(10);
  // Name reported at registration; empty means the host name.
  std::string name;
  // The agent's id at the orchestrator. Empty: the name plus a random
  // suffix, new at every start. A stable id (a StatefulSet pod's name, the
  // embedded agent of `gyre dev`) lets the orchestrator re-queue the tasks
  // a restarted agent no longer runs as soon as it registers again, rather
  // than after the lease timeout. Two agents running at once must never
  // share one.
  std::string id;
  // Tasks run at once.
  int64_t slots = 4;
  // Queues (worker types) served.
  std::vector<std::string> queues = {"default"};
  // Labels matched against task requirements, e.g. {gpu: a100}.
  std::map<std::string, std::string> labels;
  // Resources offered; 0 means detect from the machine.
  double cpu = 0;
  int64_t memory_bytes = 0;
  int64_t gpus = 0;
  // Root of per-task working directories.
  std::string work_dir = "/tmp/gyre-agent";
  // Keep each attempt's working directory after it ends (for debugging);
  // by default it is removed once the result is captured, so a long-lived
  // agent does not fill its disk with them.
  bool keep_work_dirs = false;
  // Largest stdout/stderr kept per task and stream.
  int64_t max_output_bytes = 1 << 20;
  // Time a task gets between SIGTERM and SIGKILL on timeout or cancel.
  absl::Duration kill_grace = absl::Seconds(10);
  // How long a task's process runs before the agent reports it started
  // (TaskStarted: the orchestrator shows it RUNNING). A task that ends
  // sooner sends only its result, which the orchestrator records as start
  // and end: most short tasks cost one message instead of two. 0 reports
  // each start as soon as the process is spawned.
  absl::Duration start_report_delay = absl::Milliseconds(50);
  // While more processes run on the agent than it has CPUs (`cpu`; a
  // builtin uses none), a finished task's result waits up to this long for
  // others to share its message (AgentClient::kLingerMessages queued end
  // the wait): the CPUs stay busy with the running processes meanwhile,
  // and each message, acknowledgement and commit then serves several
  // tasks. The wait ends once no more processes run than there are CPUs.
  // 0 sends every result at once.
  absl::Duration result_linger = absl::Milliseconds(10);
  // The user and group tasks run as (a name or a number; empty: the
  // agent's own). Switching needs the agent to run as root (or with
  // CAP_SETUID and CAP_SETGID, and CAP_CHOWN for the working directories).
  std::string run_as_user;
  std::string run_as_group;  // empty: run_as_user's primary group
  // Tasks may run as root (an agent running as root without run_as_user).
  // Off by default: the agent then refuses to start.
  bool allow_root_tasks = false;
  // Limits set in every task (0: the agent's own, unchanged).
  int64_t rlimit_open_files = 0;   // RLIMIT_NOFILE
  int64_t rlimit_core_bytes = -1;  // RLIMIT_CORE; -1: unchanged
  int64_t rlimit_processes = 0;    // RLIMIT_NPROC, per user
  // Enforce tasks' declared memory and CPU in a cgroup per task where the
  // machine allows it (cgroup v2, else v1); false: advisory everywhere.
  bool cgroups = true;
  // GPU device ids this agent hands out, one task per device (e.g. "0,1");
  // empty: 0..gpus-1.
  std::vector<std::string> gpu_devices;
  // The join token presented to the orchestrator (also GYRE_JOIN_TOKEN),
  // or a file holding it (a mounted Secret); at most one of them. Never
  // logged.
  std::string join_token;
  std::string join_token_file;
  // The directory /dev, /proc and /sys/fs/cgroup are read under to detect
  // the resources not configured (cpu, memory_bytes, gpus): "/" on a real
  // machine; a test's fake tree otherwise (nvidia-smi is then not asked).
  std::string detection_root = "/";

  void Register(config::ConfigSchema* schema);
  // The token from join_token or join_token_file ("" for none); an error
  // names the file, never the token.
  absl::StatusOr<std::string> JoinToken() const;
};

// The user tasks run as, from run_as_user/run_as_group (unset: the agent's
// own user). Refuses root tasks unless allow_root_tasks.
absl::StatusOr<std::optional<RunAs>> ResolveTaskUser(const AgentConfig& config);

// The rlimits every task gets, from the config.
std::vector<ResourceLimit> TaskRlimits(const AgentConfig& config);

// The GPU devices the agent hands out: gpu_devices, else 0..gpus-1.
std::vector<std::string> GpuDeviceList(const AgentConfig& config);

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_AGENT_CONFIG_H_
