// Disk faults under the embedded store, through the real orchestrator:
// a torn tail of the log is cut, logged and exported as a metric; a corrupt
// record in the middle stops recovery naming the file and offset; a nearly
// full data directory refuses new work with RESOURCE_EXHAUSTED, keeps
// serving reads, and accepts work again once space returns.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

constexpr char kWorkflow[] =
    "name: waits\ncontext:\n  PAYLOAD: \"\"\ntasks:\n  - id: t\n    command: [\"true\"]\n";

// One orchestrator process on `data_dir`, without agents (what it stores
// is all these tests need).
class Orchestrator {
 public:
  Orchestrator(const std::string& data_dir, std::vector<std::string> env = {}) {
    env.push_back("GYRE_SNAPSHOT_EVERY_RECORDS=0");  // every record stays in the log
    auto process = ChildProcess::Start(
        {Binary("services/orchestrator/gyre-orchestrator"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--shutdown_grace=2s", "--data_dir=" + data_dir},
        env);
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return;
    process_ = *std::move(process);
    auto serving = process_->WaitForLine(IsServing, absl::Seconds(20));
    if (!serving.ok()) return;
    address_ = absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
    metrics_port_ = *testing::JsonIntField(*serving, "metrics_port");
    stub_ = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  bool serving() const { return stub_ != nullptr; }
  ChildProcess& process() { return *process_; }

  grpc::Status StartExecution(v1::Execution* execution,
                              const std::map<std::string, std::string>& context = {}) {
    absl::StatusOr<v1::WorkflowDefinition> def =
        workflow::ParseWorkflowYaml(kWorkflow, "test.yaml");
    EXPECT_TRUE(def.ok()) << def.status();
    v1::StartExecutionRequest request;
    *request.mutable_definition() = *def;
    for (const auto& [key, value] : context) (*request.mutable_context())[key] = value;
    grpc::ClientContext call;
    return stub_->StartExecution(&call, request, execution);
  }

  grpc::Status GetExecution(const std::string& name, v1::Execution* execution) {
    grpc::ClientContext call;
    v1::GetExecutionRequest request;
    request.set_name(name);
    return stub_->GetExecution(&call, request, execution);
  }

  // One sample of /metrics, or -1.
  double Metric(const std::string& sample) {
    auto response = testing::HttpGet("127.0.0.1", metrics_port_, "/metrics");
    if (!response.ok()) return -1;
    const size_t at = response->body.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    double value = -1;
    const size_t start = at + sample.size() + 2;
    return absl::SimpleAtod(response->body.substr(start, response->body.find('\n', start) - start),
                            &value)
               ? value
               : -1;
  }

  void Kill() {
    process_->Signal(SIGKILL);
    process_->WaitForExit(absl::Seconds(10));
  }

 private:
  std::unique_ptr<ChildProcess> process_;
  std::string address_;
  int metrics_port_ = 0;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
};

// The newest segment of the store's log in `data_dir`.
std::string LastSegment(const std::string& data_dir) {
  std::vector<std::string> segments;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir + "/log")) {
    if (absl::StartsWith(entry.path().filename().string(), "segment")) {
      segments.push_back(entry.path().string());
    }
  }
  std::sort(segments.begin(), segments.end());
  return segments.empty() ? "" : segments.back();
}

// Where the written bytes of `path` end (the writer preallocates zeros).
off_t WrittenEnd(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return static_cast<off_t>(data.find_last_not_of('\0') + 1);
}

void Overwrite(const std::string& path, off_t offset, const std::string& bytes) {
  const int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
  close(fd);
}

TEST(DiskFaultsTest, TornTailIsCutReportedAndCounted) {
  gyre::testing::ScratchDir scratch("gyre_disk");
  const std::string data_dir = scratch.path() + "/data";
  v1::Execution execution;
  {
    Orchestrator orchestrator(data_dir);
    ASSERT_TRUE(orchestrator.serving()) << orchestrator.process().Output();
    ASSERT_TRUE(orchestrator.StartExecution(&execution).ok());
    orchestrator.Kill();
  }
  // Half a record after the last one: a group commit a crash cut short.
  const std::string segment = LastSegment(data_dir);
  ASSERT_FALSE(segment.empty());
  Overwrite(segment, WrittenEnd(segment), std::string(100, '\x5a'));

  Orchestrator restarted(data_dir);
  ASSERT_TRUE(restarted.serving()) << restarted.process().Output();
  const std::string output = restarted.process().Output();
  EXPECT_TRUE(absl::StrContains(output, "state store repaired") &&
              absl::StrContains(output, "cut a torn tail of 100 bytes from " + segment))
      << output;
  EXPECT_EQ(restarted.Metric("gyre_store_recovered_torn_tail_bytes"), 100);
  EXPECT_EQ(restarted.Metric("gyre_store_recovery_repairs"), 1);
  // What was acknowledged is all there, and the log takes appends again.
  v1::Execution again;
  EXPECT_TRUE(restarted.GetExecution(execution.name(), &again).ok());
  v1::Execution another;
  EXPECT_TRUE(restarted.StartExecution(&another).ok());
}

TEST(DiskFaultsTest, CorruptRecordInTheMiddleStopsRecoveryNamingFileAndOffset) {
  gyre::testing::ScratchDir scratch("gyre_disk");
  const std::string data_dir = scratch.path() + "/data";
  {
    Orchestrator orchestrator(data_dir);
    ASSERT_TRUE(orchestrator.serving()) << orchestrator.process().Output();
    // More than one group commit's worth (1 MiB) of acknowledged records
    // after the one that will be corrupted, so it cannot pass for a torn
    // last write.
    const std::string big(60 << 10, 'x');
    for (int i = 0; i < 24; ++i) {
      v1::Execution execution;
      const grpc::Status started = orchestrator.StartExecution(&execution, {{"PAYLOAD", big}});
      ASSERT_TRUE(started.ok()) << started.error_message();
    }
    orchestrator.Kill();
  }
  const std::string segment = LastSegment(data_dir);
  ASSERT_FALSE(segment.empty());
  ASSERT_GT(WrittenEnd(segment), 1 << 20);
  Overwrite(segment, 40, "\xff\xff\xff\xff");  // inside the first record

  Orchestrator restarted(data_dir);
  EXPECT_FALSE(restarted.serving());
  const std::optional<int> status = restarted.process().WaitForExit(absl::Seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_NE(*status, 0);
  const std::string output = restarted.process().Output();
  EXPECT_TRUE(
      absl::StrContains(output, "corrupt record in the last segment " + segment + " at offset 0"))
      << output;
  EXPECT_TRUE(absl::StrContains(output, "refusing to open")) << output;
}

TEST(DiskFaultsTest, FailedFdatasyncStopsTheOrchestratorAndNothingUnsyncedIsAcknowledged) {
  gyre::testing::ScratchDir scratch("gyre_disk");
  const std::string data_dir = scratch.path() + "/data";
  const std::string trigger = scratch.path() + "/fail-fdatasync-now";
  v1::Execution durable;
  {
    Orchestrator orchestrator(
        data_dir, {"LD_PRELOAD=" + Binary("tests/fault_injection/libgyre_fail_fdatasync.so"),
                   "GYRE_TEST_FAIL_FDATASYNC_WHEN=" + trigger});
    ASSERT_TRUE(orchestrator.serving()) << orchestrator.process().Output();
    ASSERT_TRUE(orchestrator.StartExecution(&durable).ok());

    std::ofstream(trigger) << "now";  // the disk starts failing its write-backs
    v1::Execution lost;
    const grpc::Status failed = orchestrator.StartExecution(&lost);
    EXPECT_FALSE(failed.ok()) << "a start whose record was never synced must not be acknowledged";
    const std::optional<int> status = orchestrator.process().WaitForExit(absl::Seconds(20));
    ASSERT_TRUE(status.has_value())
        << "the orchestrator must stop, never go on after a failed fdatasync:\n"
        << orchestrator.process().Output();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0);
    EXPECT_TRUE(absl::StrContains(orchestrator.process().Output(), "fdatasync"))
        << orchestrator.process().Output();
  }
  std::filesystem::remove(trigger);

  // The restart has everything acknowledged before the failure.
  Orchestrator restarted(data_dir);
  ASSERT_TRUE(restarted.serving()) << restarted.process().Output();
  v1::Execution again;
  EXPECT_TRUE(restarted.GetExecution(durable.name(), &again).ok());
}

// A small file system of its own (tmpfs, mounted here; needs root).
class SmallFileSystem {
 public:
  SmallFileSystem(const std::string& path, const std::string& size) : path_(path) {
    std::filesystem::create_directories(path);
    mounted_ = mount("tmpfs", path.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
  }
  ~SmallFileSystem() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

TEST(DiskFaultsTest, FullDataDirRefusesNewWorkKeepsReadsAndRecovers) {
  gyre::testing::ScratchDir scratch("gyre_disk");
  SmallFileSystem disk(scratch.path() + "/small", "16m");
  if (!disk.mounted()) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root: mount -t tmpfs -o size=16m); the "
                    "full-disk case is not tested";
  }
  const std::string data_dir = scratch.path() + "/small/data";
  Orchestrator orchestrator(data_dir, {"GYRE_MIN_FREE_DISK_BYTES=4194304"});
  ASSERT_TRUE(orchestrator.serving()) << orchestrator.process().Output();
  v1::Execution first;
  ASSERT_TRUE(orchestrator.StartExecution(&first).ok());

  // Fill the disk to under the 4 MiB reserve.
  const std::string filler = scratch.path() + "/small/filler";
  {
    std::ofstream out(filler, std::ios::binary);
    const std::string chunk(1 << 20, 'f');
    for (int i = 0; i < 16 && out; ++i) out.write(chunk.data(), chunk.size());
  }
  std::filesystem::resize_file(filler, std::filesystem::file_size(filler) - (2 << 20));
  absl::SleepFor(absl::Milliseconds(150));  // past the guard's 100 ms cache

  v1::Execution refused;
  const grpc::Status full = orchestrator.StartExecution(&refused);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << full.error_message();
  EXPECT_TRUE(absl::StrContains(full.error_message(), "is nearly full") &&
              absl::StrContains(full.error_message(), "min_free_disk_bytes"))
      << full.error_message();
  v1::Execution read;
  EXPECT_TRUE(orchestrator.GetExecution(first.name(), &read).ok()) << "reads keep working";

  std::filesystem::remove(filler);
  absl::SleepFor(absl::Milliseconds(150));
  v1::Execution after;
  const grpc::Status recovered = orchestrator.StartExecution(&after);
  EXPECT_TRUE(recovered.ok()) << "space returned, work must be accepted: "
                              << recovered.error_message();
  EXPECT_FALSE(orchestrator.process().WaitForExit(absl::ZeroDuration()).has_value())
      << "the orchestrator must not stop for a full disk:\n"
      << orchestrator.process().Output();
}

}  // namespace
}  // namespace gyre::e2e
