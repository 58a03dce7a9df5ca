#include "services/agent/resource_detection.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gyre::agent {
namespace {

// Small files only (/proc and cgroup files are a few lines): a bound, so a
// wrong root cannot make the agent read a huge file.
constexpr size_t kMaxReadBytes = 64 * 1024;

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return std::nullopt;
  std::string text(kMaxReadBytes, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(file.gcount()));
  return text;
}

std::string UnderRoot(const DetectionSources& sources, absl::string_view path) {
  std::string root = sources.root;
  while (!root.empty() && root.back() == '/') root.pop_back();
  return absl::StrCat(root, path);
}

// This process's cgroup v2 directory and every one above it, innermost
// first, as paths under the root (empty when there is no v2 cgroup).
std::vector<std::string> CgroupDirectories(const DetectionSources& sources) {
  std::optional<std::string> self = ReadSmallFile(UnderRoot(sources, "/proc/self/cgroup"));
  if (!self) return {};
  std::string path;
  for (absl::string_view line : absl::StrSplit(*self, '\n')) {
    if (absl::ConsumePrefix(&line, "0::")) path = std::string(line);
  }
  if (path.empty() || path[0] != '/') return {};
  std::vector<std::string> directories;
  for (;;) {
    directories.push_back(
        UnderRoot(sources, absl::StrCat("/sys/fs/cgroup", path == "/" ? "" : path)));
    if (path == "/") break;
    path = path.substr(0, std::max<size_t>(1, path.rfind('/')));
  }
  return directories;
}

// The cgroup v1 directories of `controller` ("memory", "cpu") of this
// process and every one above it, innermost first ("7:cpu,cpuacct:/a/b" is
// /sys/fs/cgroup/cpu,cpuacct/a/b, then .../a, then the hierarchy's root).
std::vector<std::string> CgroupV1Directories(const DetectionSources& sources,
                                             absl::string_view controller) {
  std::optional<std::string> self = ReadSmallFile(UnderRoot(sources, "/proc/self/cgroup"));
  if (!self) return {};
  std::vector<std::string> directories;
  for (absl::string_view line : absl::StrSplit(*self, '\n')) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() != 3 || fields[1].empty()) continue;
    std::vector<absl::string_view> controllers = absl::StrSplit(fields[1], ',');
    if (std::find(controllers.begin(), controllers.end(), controller) == controllers.end()) {
      continue;
    }
    std::string path(fields[2]);
    if (path.empty() || path[0] != '/') continue;
    for (;;) {
      directories.push_back(
          UnderRoot(sources, absl::StrCat("/sys/fs/cgroup/", fields[1], path == "/" ? "" : path)));
      if (path == "/") break;
      path = path.substr(0, std::max<size_t>(1, path.rfind('/')));
    }
  }
  return directories;
}

// The root-relative name of `path`, for the log.
std::string Shown(const DetectionSources& sources, const std::string& path) {
  const std::string root = UnderRoot(sources, "");
  return root.empty() ? path : path.substr(root.size());
}

}  // namespace

DetectedCpus DetectCpus(const DetectionSources& sources) {
  DetectedCpus detected;
  int cpus = sources.affinity_cpus.value_or(0);
  if (!sources.affinity_cpus.has_value()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
    if (cpus <= 0) cpus = static_cast<int>(std::max<long>(1, sysconf(_SC_NPROCESSORS_ONLN)));
  }
  detected.cpus = cpus;
  detected.source = "sched_getaffinity";
  for (const std::string& directory : CgroupDirectories(sources)) {
    std::optional<std::string> text = ReadSmallFile(directory + "/cpu.max");
    if (!text) continue;
    // "QUOTA PERIOD" in microseconds, or "max PERIOD" for no limit.
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::StripAsciiWhitespace(*text), ' ', absl::SkipEmpty());
    double quota = 0;
    double period = 0;
    if (fields.size() != 2 || !absl::SimpleAtod(fields[0], &quota) ||
        !absl::SimpleAtod(fields[1], &period) || quota <= 0 || period <= 0) {
      continue;
    }
    if (quota / period < detected.cpus) {
      detected.cpus = quota / period;
      detected.source = absl::StrCat("cgroup cpu.max (", Shown(sources, directory), ")");
    }
  }
  for (const std::string& directory : CgroupV1Directories(sources, "cpu")) {
    // cgroup v1: cpu.cfs_quota_us (-1: no limit) over cpu.cfs_period_us.
    std::optional<std::string> quota_text = ReadSmallFile(directory + "/cpu.cfs_quota_us");
    std::optional<std::string> period_text = ReadSmallFile(directory + "/cpu.cfs_period_us");
    double quota = 0;
    double period = 0;
    if (!quota_text || !period_text ||
        !absl::SimpleAtod(absl::StripAsciiWhitespace(*quota_text), &quota) ||
        !absl::SimpleAtod(absl::StripAsciiWhitespace(*period_text), &period) || quota <= 0 ||
        period <= 0) {
      continue;
    }
    if (quota / period < detected.cpus) {
      detected.cpus = quota / period;
      detected.source =
          absl::StrCat("cgroup v1 cpu.cfs_quota_us (", Shown(sources, directory), ")");
    }
  }
  return detected;
}

DetectedMemory DetectMemory(const DetectionSources& sources) {
  DetectedMemory detected;
  if (std::optional<std::string> meminfo = ReadSmallFile(UnderRoot(sources, "/proc/meminfo"))) {
    for (absl::string_view line : absl::StrSplit(*meminfo, '\n')) {
      // "MemTotal:       16318412 kB"
      if (!absl::ConsumePrefix(&line, "MemTotal:")) continue;
      line = absl::StripAsciiWhitespace(line);
      int64_t kib = 0;
      if (absl::ConsumeSuffix(&line, "kB") &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kib) && kib > 0) {
        detected.bytes = kib * 1024;
        detected.source = "/proc/meminfo";
      }
    }
  }
  for (const std::string& directory : CgroupDirectories(sources)) {
    std::optional<std::string> text = ReadSmallFile(directory + "/memory.max");
    int64_t limit = 0;
    if (!text || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &limit) || limit <= 0) {
      continue;  // absent, or "max"
    }
    if (detected.bytes == 0 || limit < detected.bytes) {
      detected.bytes = limit;
      detected.source = absl::StrCat("cgroup memory.max (", Shown(sources, directory), ")");
    }
  }
  for (const std::string& directory : CgroupV1Directories(sources, "memory")) {
    // cgroup v1: memory.limit_in_bytes (a huge number when there is none).
    std::optional<std::string> text = ReadSmallFile(directory + "/memory.limit_in_bytes");
    int64_t limit = 0;
    if (!text || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &limit) || limit <= 0) {
      continue;
    }
    if (detected.bytes == 0 || limit < detected.bytes) {
      detected.bytes = limit;
      detected.source =
          absl::StrCat("cgroup v1 memory.limit_in_bytes (", Shown(sources, directory), ")");
    }
  }
  return detected;
}

DetectedGpus DetectGpus(const DetectionSources& sources) {
  DetectedGpus detected;
  std::vector<int> ids;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(UnderRoot(sources, "/dev"), error)) {
    absl::string_view name = entry.path().filename().native();
    int id = 0;
    if (absl::ConsumePrefix(&name, "nvidia") && !name.empty() &&
        std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        absl::SimpleAtoi(name, &id)) {
      ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  for (int id : ids) detected.devices.push_back(absl::StrCat(id));
  if (!detected.devices.empty()) {
    detected.source = "/dev/nvidia*";
    return detected;
  }
  detected.source = "none found";
  if (sources.nvidia_smi.empty()) return detected;
  if (absl::StrContains(sources.nvidia_smi, '/')) {
    if (access(sources.nvidia_smi.c_str(), X_OK) != 0) return detected;
  } else {
    const char* path = std::getenv("PATH");
    bool found = false;
    for (absl::string_view directory : absl::StrSplit(path == nullptr ? "" : path, ':')) {
      if (access(absl::StrCat(directory, "/", sources.nvidia_smi).c_str(), X_OK) == 0) {
        found = true;
        break;
      }
    }
    if (!found) return detected;
  }
  // The path comes from the agent's own code or a test, never from a
  // request; quoted all the same.
  const std::string command = absl::StrCat("'", sources.nvidia_smi, "' -L 2>/dev/null");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return detected;
  std::string output;
  char buffer[4096];
  size_t read = 0;
  while ((read = fread(buffer, 1, sizeof(buffer), pipe)) > 0 && output.size() < kMaxReadBytes) {
    output.append(buffer, read);
  }
  pclose(pipe);
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    // "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-...)"
    if (!absl::ConsumePrefix(&line, "GPU ")) continue;
    const size_t colon = line.find(':');
    int id = 0;
    if (colon != absl::string_view::npos && absl::SimpleAtoi(line.substr(0, colon), &id)) {
      detected.devices.push_back(absl::StrCat(id));
    }
  }
  if (!detected.devices.empty()) detected.source = "nvidia-smi -L";
  return detected;
}

}  // namespace gyre::agent
