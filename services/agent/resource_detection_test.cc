#include "services/agent/resource_detection.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "libs/testing/scratch_dir.h"

namespace gyre::agent {
namespace {

// A fake machine: files under a scratch root, as the agent reads them.
class FakeRoot {
 public:
  FakeRoot() { EXPECT_FALSE(dir_.path().empty()); }
  void Write(const std::string& path, const std::string& text) {
    const std::filesystem::path full = dir_.path() + path;
    std::filesystem::create_directories(full.parent_path());
    std::ofstream(full) << text;
  }
  DetectionSources Sources() const {
    DetectionSources sources;
    sources.root = dir_.path();
    sources.nvidia_smi.clear();
    sources.affinity_cpus = 8;
    return sources;
  }
  const std::string& path() const { return dir_.path(); }

 private:
  testing::ScratchDir dir_{"gyre_fake_root"};
};

TEST(ResourceDetectionTest, GpusAreTheNvidiaDevicesNotTheControlNodes) {
  FakeRoot root;
  for (const char* device : {"nvidia1", "nvidia0", "nvidia10", "nvidiactl", "nvidia-uvm", "null"}) {
    root.Write(std::string("/dev/") + device, "");
  }
  const DetectedGpus gpus = DetectGpus(root.Sources());
  EXPECT_EQ(gpus.devices, (std::vector<std::string>{"0", "1", "10"}));
  EXPECT_EQ(gpus.source, "/dev/nvidia*");
}

TEST(ResourceDetectionTest, GpusComeFromNvidiaSmiWhenNoDeviceIsVisible) {
  FakeRoot root;
  root.Write("/dev/null", "");
  const std::string smi = root.path() + "/bin/nvidia-smi";
  root.Write("/bin/nvidia-smi",
             "#!/bin/sh\n"
             "[ \"$1\" = -L ] || exit 1\n"
             "echo 'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)'\n"
             "echo 'GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbb)'\n");
  ASSERT_EQ(chmod(smi.c_str(), 0755), 0);
  DetectionSources sources = root.Sources();
  sources.nvidia_smi = smi;
  const DetectedGpus gpus = DetectGpus(sources);
  EXPECT_EQ(gpus.devices, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(gpus.source, "nvidia-smi -L");
  // Without the devices and without nvidia-smi: none.
  sources.nvidia_smi = root.path() + "/bin/absent";
  EXPECT_TRUE(DetectGpus(sources).devices.empty());
  EXPECT_EQ(DetectGpus(sources).source, "none found");
}

TEST(ResourceDetectionTest, MemoryIsMemTotalOrTheLowerCgroupLimit) {
  FakeRoot root;
  root.Write("/proc/meminfo",
             "MemTotal:       16318412 kB\n"
             "MemFree:         1000000 kB\n");
  DetectedMemory memory = DetectMemory(root.Sources());
  EXPECT_EQ(memory.bytes, int64_t{16318412} * 1024);
  EXPECT_EQ(memory.source, "/proc/meminfo");

  // The limit is on a cgroup above this process's: it binds all the same.
  root.Write("/proc/self/cgroup", "0::/kubepods/pod1/agent\n");
  root.Write("/sys/fs/cgroup/kubepods/pod1/agent/memory.max", "max\n");
  root.Write("/sys/fs/cgroup/kubepods/pod1/memory.max", "2147483648\n");
  memory = DetectMemory(root.Sources());
  EXPECT_EQ(memory.bytes, int64_t{2147483648});
  EXPECT_EQ(memory.source, "cgroup memory.max (/sys/fs/cgroup/kubepods/pod1)");

  // A limit above the machine's memory does not raise it.
  root.Write("/sys/fs/cgroup/kubepods/pod1/memory.max", "999999999999999\n");
  EXPECT_EQ(DetectMemory(root.Sources()).bytes, int64_t{16318412} * 1024);
}

TEST(ResourceDetectionTest, CpusAreTheAffinityOrTheLowerCgroupQuota) {
  FakeRoot root;
  DetectedCpus cpus = DetectCpus(root.Sources());
  EXPECT_EQ(cpus.cpus, 8);
  EXPECT_EQ(cpus.source, "sched_getaffinity");

  root.Write("/proc/self/cgroup", "0::/agent\n");
  root.Write("/sys/fs/cgroup/agent/cpu.max", "150000 100000\n");
  cpus = DetectCpus(root.Sources());
  EXPECT_DOUBLE_EQ(cpus.cpus, 1.5);
  EXPECT_EQ(cpus.source, "cgroup cpu.max (/sys/fs/cgroup/agent)");

  root.Write("/sys/fs/cgroup/agent/cpu.max", "max 100000\n");
  EXPECT_EQ(DetectCpus(root.Sources()).cpus, 8);

  // The real machine: at least one CPU.
  EXPECT_GE(DetectCpus(DetectionSources{}).cpus, 1);
}

TEST(ResourceDetectionTest, CgroupV1LimitsCountToo) {
  FakeRoot root;
  root.Write("/proc/meminfo", "MemTotal:       16318412 kB\n");
  root.Write("/proc/self/cgroup",
             "9:memory:/docker/abc\n"
             "7:cpu,cpuacct:/docker/abc\n"
             "1:name=systemd:/docker/abc\n");
  root.Write("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "1073741824\n");
  root.Write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n");
  root.Write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  const DetectedMemory memory = DetectMemory(root.Sources());
  EXPECT_EQ(memory.bytes, int64_t{1073741824});
  EXPECT_EQ(memory.source, "cgroup v1 memory.limit_in_bytes (/sys/fs/cgroup/memory/docker/abc)");
  const DetectedCpus cpus = DetectCpus(root.Sources());
  EXPECT_DOUBLE_EQ(cpus.cpus, 2);
  EXPECT_EQ(cpus.source, "cgroup v1 cpu.cfs_quota_us (/sys/fs/cgroup/cpu,cpuacct/docker/abc)");
  // No limit: -1 and the "unlimited" huge number leave the machine's figures.
  root.Write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  root.Write("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(DetectCpus(root.Sources()).cpus, 8);
  EXPECT_EQ(DetectMemory(root.Sources()).bytes, int64_t{16318412} * 1024);
}

}  // namespace
}  // namespace gyre::agent
