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
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/logging/logger.h"
#include "services/agent/agent_owned_dirs.h"

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

// The whole of a small file ("" if it cannot be read). Plain read(2): it
// runs several times per task on the cgroup path, where a stream's buffers
// and locale cost more than the kernel's part.
std::string ReadFile(const std::string& path) {
  std::string text;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buffer[4096];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

// The whole of a small file open at `fd`, read from its start again (a
// cgroup file is generated afresh for a read at offset 0).
std::string ReadAt(int fd) {
  std::string text;
  char buffer[4096];
  off_t offset = 0;
  while (true) {
    const ssize_t n = pread(fd, buffer, sizeof(buffer), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
    offset += n;
  }
  return text;
}

// `fd` open at `path` if it could be, else the file read by its path.
std::string ReadEither(int fd, const std::string& path) {
  return fd >= 0 ? ReadAt(fd) : ReadFile(path);
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

namespace {

// Removes the task cgroups under `base` that agents which died left behind
// (kill -9, OOM: a kept cgroup is removed only by a clean stop). A live
// agent holds a lock (flock) on each of its cgroups' directories; one that
// nobody holds, empty, is stale. Nothing is killed: a cgroup with processes
// in it (a dead agent's orphaned task, an agent's own leaf) stays. Each
// left one would pin a memory cgroup id, and the kernel has 65,535: on this
// project's test machine, test and benchmark agents ended by SIGKILL had
// left ~65,000 of them, and no cgroup could be made any more.
void RemoveStaleCgroups(const std::string& base) {
  int removed = 0;
  ForEachAbandonedDirectory(base, {"gyre-"}, [&](const std::string& path, int) {
    if (rmdir(path.c_str()) == 0) removed++;
  });
  if (removed > 0) {
    logging::Info("removed the task cgroups of agents that are gone",
                  {{"under", base}, {"cgroups", static_cast<int64_t>(removed)}});
  }
}

}  // namespace

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
        RemoveStaleCgroups(v2->own_dir);
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
      RemoveStaleCgroups(cgroups->memory_base_);
      if (!cgroups->cpu_base_.empty()) RemoveStaleCgroups(cgroups->cpu_base_);
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

TaskCgroups::~TaskCgroups() {
  absl::MutexLock lock(&mutex_);
  // Ownerless, a kept cgroup is removed when destroyed.
  for (auto& cgroup : kept_) cgroup->owner_ = nullptr;
  kept_.clear();
}

size_t TaskCgroups::kept() const {
  absl::MutexLock lock(&mutex_);
  return kept_.size();
}

absl::StatusOr<std::unique_ptr<TaskCgroup>> TaskCgroups::Create(const TaskLimits& limits) const {
  if (mode_ == Mode::kNone) return absl::FailedPreconditionError(description_);
  std::unique_ptr<TaskCgroup> cgroup;
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mutex_);
    if (!kept_.empty()) {
      cgroup = std::move(kept_.back());
      kept_.pop_back();
    } else {
      id = next_id_++;
    }
  }
  if (cgroup != nullptr) {
    cgroup->seen_empty_ = false;
    // Reused: the peak starts again from what it holds now.
    const bool reset =
        cgroup->v2_ ? pwrite(cgroup->peak_fd_, "0", 1, 0) == 1
        : cgroup->usage_fd_ >= 0
            ? pwrite(cgroup->usage_fd_, "0", 1, 0) == 1
            : WriteFile(cgroup->memory_dir_ + "/memory.max_usage_in_bytes", "0").ok();
    absl::Status applied =
        reset ? Apply(*cgroup, limits) : absl::FailedPreconditionError("the peak cannot be reset");
    if (applied.ok()) return cgroup;
    // Not reusable after all: removed, and a new one made.
    cgroup->owner_ = nullptr;
    cgroup.reset();
    absl::MutexLock lock(&mutex_);
    id = next_id_++;
  }
  cgroup = std::unique_ptr<TaskCgroup>(new TaskCgroup());
  cgroup->v2_ = mode_ == Mode::kV2;
  auto make = [&](const std::string& base) -> absl::StatusOr<std::string> {
    for (int attempt = 0;; ++attempt) {
      const std::string dir = absl::StrCat(base, "/", prefix_, "-", id);
      // Held while it lives, so another agent's start does not take it for
      // abandoned (RemoveStaleCgroups).
      absl::StatusOr<int> lock_fd = MakeHeldDirectory(dir, 0755, /*existing_ok=*/true);
      if (lock_fd.ok()) {
        cgroup->lock_fds_.push_back(*lock_fd);
        return dir;
      }
      if (!absl::IsAborted(lock_fd.status()) || attempt == 2) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot create the task's cgroup: ", lock_fd.status().message()));
      }
      absl::MutexLock lock(&mutex_);
      id = next_id_++;
    }
  };
  absl::StatusOr<std::string> memory_dir = make(memory_base_);
  if (!memory_dir.ok()) return memory_dir.status();
  cgroup->memory_dir_ = *memory_dir;
  if (!cgroup->v2_ && limits.cpu > 0 && !cpu_base_.empty()) {
    absl::StatusOr<std::string> cpu_dir = make(cpu_base_);
    if (!cpu_dir.ok()) return cpu_dir.status();
    cgroup->cpu_dir_ = *cpu_dir;
  }
  if (cgroup->v2_) {
    // Writable since Linux 6.12 (a reset); read-only before, and then the
    // cgroup is not reused.
    const std::string peak = cgroup->memory_dir_ + "/memory.peak";
    cgroup->peak_fd_ = open(peak.c_str(), O_RDWR | O_CLOEXEC);
    if (cgroup->peak_fd_ < 0) cgroup->peak_fd_ = open(peak.c_str(), O_RDONLY | O_CLOEXEC);
    (void)WriteFile(cgroup->memory_dir_ + "/memory.swap.max", "0");
    cgroup->events_fd_ =
        open((cgroup->memory_dir_ + "/memory.events").c_str(), O_RDONLY | O_CLOEXEC);
  } else {
    cgroup->usage_fd_ =
        open((cgroup->memory_dir_ + "/memory.max_usage_in_bytes").c_str(), O_RDWR | O_CLOEXEC);
    cgroup->events_fd_ =
        open((cgroup->memory_dir_ + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC);
  }
  cgroup->procs_read_fd_ = open(ProcsFile(cgroup->memory_dir_).c_str(), O_RDONLY | O_CLOEXEC);
  for (const std::string* path : {&cgroup->memory_dir_, &cgroup->cpu_dir_}) {
    if (path->empty()) continue;
    const int fd = open(ProcsFile(*path).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open ", ProcsFile(*path), ": ", std::strerror(errno)));
    }
    cgroup->procs_fds_.push_back(fd);
  }
  absl::Status applied = Apply(*cgroup, limits);
  if (!applied.ok()) return applied;
  // Complete: from now on it may be kept for reuse (one that failed half
  // made is removed).
  cgroup->owner_ = this;
  return cgroup;
}

absl::Status TaskCgroups::Apply(TaskCgroup& cgroup, const TaskLimits& limits) const {
  const std::string& dir = cgroup.memory_dir_;
  if (limits.memory_bytes != cgroup.written_.memory_bytes) {
    // No limit: the most there is ("max"; v1 takes -1).
    const std::string value = limits.memory_bytes > 0 ? absl::StrCat(limits.memory_bytes)
                              : cgroup.v2_            ? "max"
                                                      : "-1";
    if (cgroup.v2_) {
      absl::Status status = WriteFile(dir + "/memory.max", value);
      if (!status.ok()) return status;
    } else {
      // memsw (memory + swap) must stay >= memory: lowered after, raised
      // before (so swap cannot let a task exceed its memory unseen).
      const bool lowering =
          limits.memory_bytes > 0 &&
          (cgroup.written_.memory_bytes <= 0 || limits.memory_bytes < cgroup.written_.memory_bytes);
      if (!lowering) (void)WriteFile(dir + "/memory.memsw.limit_in_bytes", value);
      absl::Status status = WriteFile(dir + "/memory.limit_in_bytes", value);
      if (!status.ok()) return status;
      if (lowering) (void)WriteFile(dir + "/memory.memsw.limit_in_bytes", value);
    }
    cgroup.written_.memory_bytes = limits.memory_bytes;
  }
  if (limits.cpu != cgroup.written_.cpu) {
    const auto quota = static_cast<int64_t>(std::ceil(limits.cpu * kCpuPeriodUs));
    if (cgroup.v2_) {
      absl::Status status =
          WriteFile(dir + "/cpu.max", limits.cpu > 0 ? absl::StrCat(quota, " ", kCpuPeriodUs)
                                                     : absl::StrCat("max ", kCpuPeriodUs));
      if (!status.ok()) return status;
    } else if (!cgroup.cpu_dir_.empty()) {
      absl::Status status =
          WriteFile(cgroup.cpu_dir_ + "/cpu.cfs_period_us", absl::StrCat(kCpuPeriodUs));
      if (status.ok()) {
        status = WriteFile(cgroup.cpu_dir_ + "/cpu.cfs_quota_us",
                           limits.cpu > 0 ? absl::StrCat(quota) : "-1");
      }
      if (!status.ok()) return status;
    } else if (limits.cpu > 0 && !cpu_base_.empty()) {
      // A kept v1 cgroup made for a task without a CPU limit.
      return absl::FailedPreconditionError("the kept cgroup has no cpu hierarchy part");
    }
    cgroup.written_.cpu = limits.cpu;
  }
  return absl::OkStatus();
}

bool TaskCgroups::Keep(TaskCgroup& cgroup) const {
  auto kept = std::unique_ptr<TaskCgroup>(new TaskCgroup());
  {
    absl::MutexLock lock(&mutex_);
    if (kept_.size() >= kMaxKept) return false;
  }
  // Its OOM kills so far: the next task's start from here.
  kept->oom_kills_before_ = cgroup.OomKills();
  kept->owner_ = this;
  kept->v2_ = cgroup.v2_;
  kept->memory_dir_ = std::move(cgroup.memory_dir_);
  kept->cpu_dir_ = std::move(cgroup.cpu_dir_);
  kept->procs_fds_ = std::move(cgroup.procs_fds_);
  kept->lock_fds_ = std::move(cgroup.lock_fds_);
  kept->peak_fd_ = std::exchange(cgroup.peak_fd_, -1);
  kept->usage_fd_ = std::exchange(cgroup.usage_fd_, -1);
  kept->events_fd_ = std::exchange(cgroup.events_fd_, -1);
  kept->procs_read_fd_ = std::exchange(cgroup.procs_read_fd_, -1);
  kept->written_ = cgroup.written_;
  cgroup.memory_dir_.clear();
  cgroup.cpu_dir_.clear();
  cgroup.procs_fds_.clear();
  cgroup.lock_fds_.clear();
  absl::MutexLock lock(&mutex_);
  kept_.push_back(std::move(kept));
  return true;
}

int64_t TaskCgroup::OomKills() const {
  return KeyedValue(
      ReadEither(events_fd_, memory_dir_ + (v2_ ? "/memory.events" : "/memory.oom_control")),
      "oom_kill");
}

TaskCgroup::Usage TaskCgroup::Read() const {
  Usage usage;
  if (v2_) {
    char text[32] = {};
    const ssize_t n = peak_fd_ >= 0 ? pread(peak_fd_, text, sizeof(text) - 1, 0) : -1;
    int64_t peak = 0;
    if (n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(text, n)), &peak)) {
      usage.peak_memory_bytes = peak;
    }
  } else {
    int64_t peak = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(
                             ReadEither(usage_fd_, memory_dir_ + "/memory.max_usage_in_bytes")),
                         &peak)) {
      usage.peak_memory_bytes = peak;
    }
  }
  usage.oom_killed = OomKills() > oom_kills_before_;
  return usage;
}

void TaskCgroup::KillAll() const {
  if (v2_ && WriteFile(memory_dir_ + "/cgroup.kill", "1").ok()) return;
  for (int round = 0; round < 3; ++round) {
    const std::string procs = Procs();
    if (procs.empty()) {
      // Nothing is left to fork into it: WaitEmpty need not look again.
      seen_empty_ = true;
      return;
    }
    for (absl::string_view line : absl::StrSplit(procs, '\n', absl::SkipEmpty())) {
      int pid = 0;
      if (absl::SimpleAtoi(line, &pid) && pid > 0) kill(pid, SIGKILL);
    }
  }
}

std::string TaskCgroup::Procs() const { return ReadEither(procs_read_fd_, ProcsFile(memory_dir_)); }

bool TaskCgroup::Empty() const {
  if (!seen_empty_ && Procs().empty()) seen_empty_ = true;
  return seen_empty_;
}

bool TaskCgroup::WaitEmpty() const {
  if (seen_empty_) return true;
  // Killed processes leave the cgroup a moment after the signal.
  for (int attempt = 0; attempt < 200; ++attempt) {
    const std::string procs = Procs();
    if (procs.empty()) return true;
    if (attempt % 20 == 19) KillAll();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TaskCgroup::~TaskCgroup() {
  if (memory_dir_.empty()) {
    // Handed on to a kept one (nothing left here), or never made whole.
    for (int fd : lock_fds_) close(fd);
    return;
  }
  if (owner_ != nullptr && WaitEmpty() && owner_->Keep(*this)) return;
  for (int fd : procs_fds_) close(fd);
  for (int fd : {peak_fd_, usage_fd_, events_fd_, procs_read_fd_}) {
    if (fd >= 0) close(fd);
  }
  for (const std::string* dir : {&memory_dir_, &cpu_dir_}) {
    if (dir->empty()) continue;
    for (int attempt = 0; attempt < 200; ++attempt) {
      if (rmdir(dir->c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) break;
      if (attempt % 20 == 19) KillAll();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  // Last: until it is gone, no other agent may take it for stale.
  for (int fd : lock_fds_) close(fd);
}

}  // namespace gyre::agent
