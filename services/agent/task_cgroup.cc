#include "services/agent/task_cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gyre::agent {
namespace {

constexpr int64_t kCpuPeriodUs = 100000;

absl::Status WriteFile(const std::string& path, absl::string_view value) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  const ssize_t n = write(fd, value.data(), value.size());
  const int error = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write \"", value, "\" to ", path, ": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The number after `key` in a "key value" per line file (memory.events,
// memory.oom_control); 0 if absent.
int64_t KeyedValue(const std::string& text, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
    int64_t value = 0;
    if (kv.first == key && absl::SimpleAtoi(kv.second, &value)) return value;
  }
  return 0;
}

int64_t NumberIn(const std::string& path) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(path)), &value)) return 0;
  return value;
}

// A mounted cgroup hierarchy and the agent's cgroup in it.
struct Hierarchy {
  std::string mount_point;
  std::string own_dir;  // mount point + the agent's cgroup path
};

// Finds the mount of the v2 hierarchy (empty `controller`) or of the v1
// one carrying `controller`, and the agent's cgroup in it, from
// /proc/self/mountinfo and /proc/self/cgroup.
std::optional<Hierarchy> FindHierarchy(absl::string_view controller) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  std::optional<Hierarchy> found;
  std::string mount_root;
  while (std::getline(mountinfo, line)) {
    std::vector<absl::string_view> halves = absl::StrSplit(line, " - ");
    if (halves.size() != 2) continue;
    std::vector<absl::string_view> before = absl::StrSplit(halves[0], ' ');
    std::vector<absl::string_view> after = absl::StrSplit(halves[1], ' ');
    if (before.size() < 5 || after.size() < 3) continue;
    const bool v2 = after[0] == "cgroup2";
    bool match = false;
    if (controller.empty()) {
      match = v2;
    } else if (after[0] == "cgroup") {
      for (absl::string_view option : absl::StrSplit(after[2], ',')) match |= option == controller;
    }
    if (!match) continue;
    found = Hierarchy{std::string(before[4]), ""};
    mount_root = std::string(before[3]);
    break;
  }
  if (!found.has_value()) return std::nullopt;
  std::ifstream cgroups("/proc/self/cgroup");
  while (std::getline(cgroups, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() != 3) continue;
    bool match = false;
    if (controller.empty()) {
      match = fields[0] == "0" && fields[1].empty();
    } else {
      for (absl::string_view name : absl::StrSplit(fields[1], ',')) match |= name == controller;
    }
    if (!match) continue;
    absl::string_view path = fields[2];
    if (mount_root != "/") absl::ConsumePrefix(&path, mount_root);
    found->own_dir = absl::StrCat(found->mount_point, path == "/" ? "" : path);
    return found;
  }
  return std::nullopt;
}

std::string ProcsFile(const std::string& dir) { return dir + "/cgroup.procs"; }

}  // namespace

std::string FormatBytes(int64_t bytes) {
  constexpr int64_t kMiB = int64_t{1} << 20;
  constexpr int64_t kGiB = int64_t{1} << 30;
  if (bytes >= kGiB) {
    return bytes % kGiB == 0 ? absl::StrCat(bytes / kGiB, " GiB")
                             : absl::StrFormat("%.1f GiB", static_cast<double>(bytes) / kGiB);
  }
  if (bytes >= kMiB) {
    return bytes % kMiB == 0 ? absl::StrCat(bytes / kMiB, " MiB")
                             : absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / kMiB);
  }
  return absl::StrCat(bytes, " bytes");
}

std::unique_ptr<TaskCgroups> TaskCgroups::Disabled(std::string why) {
  auto cgroups = std::unique_ptr<TaskCgroups>(new TaskCgroups());
  cgroups->description_ = absl::StrCat("none: ", why);
  return cgroups;
}

std::unique_ptr<TaskCgroups> TaskCgroups::Detect(const std::string& prefix) {
  auto cgroups = std::unique_ptr<TaskCgroups>(new TaskCgroups());
  cgroups->prefix_ = prefix;
  std::string v2_why = "no cgroup v2 hierarchy is mounted";
  if (std::optional<Hierarchy> v2 = FindHierarchy("")) {
    const std::string available = ReadFile(v2->own_dir + "/cgroup.controllers");
    std::vector<absl::string_view> names = absl::StrSplit(available, absl::ByAnyChar(" \n"));
    const bool memory = std::find(names.begin(), names.end(), "memory") != names.end();
    const bool cpu = std::find(names.begin(), names.end(), "cpu") != names.end();
    if (!memory || !cpu) {
      v2_why = absl::StrCat("the cgroup v2 hierarchy at ", v2->own_dir,
                            " offers no memory and cpu controllers (they are bound to cgroup v1)");
    } else {
      // Tasks' cgroups go beside the agent's, under a parent that passes
      // the controllers down; a cgroup with processes cannot (the "no
      // internal processes" rule), so the agent moves into a leaf first.
      absl::Status enabled = WriteFile(v2->own_dir + "/cgroup.subtree_control", "+memory +cpu");
      if (!enabled.ok()) {
        const std::string leaf = v2->own_dir + "/gyre-agent";
        mkdir(leaf.c_str(), 0755);
        enabled = WriteFile(ProcsFile(leaf), "0");
        if (enabled.ok()) {
          enabled = WriteFile(v2->own_dir + "/cgroup.subtree_control", "+memory +cpu");
        }
      }
      if (enabled.ok()) {
        cgroups->mode_ = Mode::kV2;
        cgroups->memory_base_ = v2->own_dir;
        cgroups->description_ = absl::StrCat("cgroup v2 (", v2->own_dir, ")");
        return cgroups;
      }
      v2_why = absl::StrCat("cgroup v2 is not writable here: ", enabled.message());
    }
  }
  // cgroup v1 (a hybrid host): the memory hierarchy, and cpu if writable.
  if (std::optional<Hierarchy> memory = FindHierarchy("memory")) {
    const std::string probe = absl::StrCat(memory->own_dir, "/", prefix, "-probe");
    if (mkdir(probe.c_str(), 0755) == 0 || errno == EEXIST) {
      rmdir(probe.c_str());
      cgroups->mode_ = Mode::kV1;
      cgroups->memory_base_ = memory->own_dir;
      if (std::optional<Hierarchy> cpu = FindHierarchy("cpu")) {
        const std::string cpu_probe = absl::StrCat(cpu->own_dir, "/", prefix, "-probe");
        if (mkdir(cpu_probe.c_str(), 0755) == 0 || errno == EEXIST) {
          rmdir(cpu_probe.c_str());
          cgroups->cpu_base_ = cpu->own_dir;
        }
      }
      cgroups->description_ =
          absl::StrCat("cgroup v1 memory", cgroups->cpu_base_.empty() ? "" : "+cpu", " (",
                       memory->own_dir, "); ", v2_why);
      return cgroups;
    }
    v2_why += absl::StrCat("; the cgroup v1 memory hierarchy at ", memory->own_dir,
                           " is not writable: ", std::strerror(errno));
  }
  cgroups->description_ = absl::StrCat("none: ", v2_why);
  return cgroups;
}

absl::StatusOr<std::unique_ptr<TaskCgroup>> TaskCgroups::Create(const std::string& name,
                                                                const TaskLimits& limits) const {
  if (mode_ == Mode::kNone) return absl::FailedPreconditionError(description_);
  auto cgroup = std::unique_ptr<TaskCgroup>(new TaskCgroup());
  cgroup->v2_ = mode_ == Mode::kV2;
  auto make = [&](const std::string& base) -> absl::StatusOr<std::string> {
    const std::string dir = absl::StrCat(base, "/", prefix_, "-", name);
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create the task's cgroup ", dir, ": ", std::strerror(errno)));
    }
    return dir;
  };
  absl::StatusOr<std::string> memory_dir = make(memory_base_);
  if (!memory_dir.ok()) return memory_dir.status();
  cgroup->memory_dir_ = *memory_dir;
  const std::string& dir = cgroup->memory_dir_;
  if (cgroup->v2_) {
    if (limits.memory_bytes > 0) {
      absl::Status status = WriteFile(dir + "/memory.max", absl::StrCat(limits.memory_bytes));
      if (!status.ok()) return status;
      // Swap would let a task exceed its memory unseen.
      (void)WriteFile(dir + "/memory.swap.max", "0");
    }
    if (limits.cpu > 0) {
      const auto quota = static_cast<int64_t>(std::ceil(limits.cpu * kCpuPeriodUs));
      absl::Status status = WriteFile(dir + "/cpu.max", absl::StrCat(quota, " ", kCpuPeriodUs));
      if (!status.ok()) return status;
    }
  } else {
    if (limits.memory_bytes > 0) {
      absl::Status status =
          WriteFile(dir + "/memory.limit_in_bytes", absl::StrCat(limits.memory_bytes));
      if (!status.ok()) return status;
      (void)WriteFile(dir + "/memory.memsw.limit_in_bytes", absl::StrCat(limits.memory_bytes));
    }
    if (limits.cpu > 0 && !cpu_base_.empty()) {
      absl::StatusOr<std::string> cpu_dir = make(cpu_base_);
      if (!cpu_dir.ok()) return cpu_dir.status();
      cgroup->cpu_dir_ = *cpu_dir;
      const auto quota = static_cast<int64_t>(std::ceil(limits.cpu * kCpuPeriodUs));
      absl::Status status =
          WriteFile(cgroup->cpu_dir_ + "/cpu.cfs_period_us", absl::StrCat(kCpuPeriodUs));
      if (status.ok()) {
        status = WriteFile(cgroup->cpu_dir_ + "/cpu.cfs_quota_us", absl::StrCat(quota));
      }
      if (!status.ok()) return status;
    }
  }
  for (const std::string* path : {&cgroup->memory_dir_, &cgroup->cpu_dir_}) {
    if (path->empty()) continue;
    const int fd = open(ProcsFile(*path).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open ", ProcsFile(*path), ": ", std::strerror(errno)));
    }
    cgroup->procs_fds_.push_back(fd);
  }
  return cgroup;
}

TaskCgroup::Usage TaskCgroup::Read() const {
  Usage usage;
  if (v2_) {
    usage.peak_memory_bytes = NumberIn(memory_dir_ + "/memory.peak");
    usage.oom_killed = KeyedValue(ReadFile(memory_dir_ + "/memory.events"), "oom_kill") > 0;
  } else {
    usage.peak_memory_bytes = NumberIn(memory_dir_ + "/memory.max_usage_in_bytes");
    usage.oom_killed = KeyedValue(ReadFile(memory_dir_ + "/memory.oom_control"), "oom_kill") > 0;
  }
  return usage;
}

void TaskCgroup::KillAll() const {
  if (v2_ && WriteFile(memory_dir_ + "/cgroup.kill", "1").ok()) return;
  for (int round = 0; round < 3; ++round) {
    const std::string procs = ReadFile(ProcsFile(memory_dir_));
    if (procs.empty()) return;
    for (absl::string_view line : absl::StrSplit(procs, '\n', absl::SkipEmpty())) {
      int pid = 0;
      if (absl::SimpleAtoi(line, &pid) && pid > 0) kill(pid, SIGKILL);
    }
  }
}

TaskCgroup::~TaskCgroup() {
  for (int fd : procs_fds_) close(fd);
  for (const std::string* dir : {&memory_dir_, &cpu_dir_}) {
    if (dir->empty()) continue;
    // Killed processes leave the cgroup a moment after the signal.
    for (int attempt = 0; attempt < 200; ++attempt) {
      if (rmdir(dir->c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) break;
      if (attempt % 20 == 19) KillAll();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

}  // namespace gyre::agent
