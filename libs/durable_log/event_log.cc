#include "libs/durable_log/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace gyre::durable_log {
namespace {

constexpr size_t kHeaderBytes = 8;
constexpr uint32_t kMaxRecordBytes = 64u << 20;

uint32_t Crc(absl::string_view data) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

void PutU32(uint32_t value, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

uint32_t GetU32(const char* in) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i)
    value |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int error = errno;
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(error));
  return error == ENOSPC ? absl::ResourceExhaustedError(message) : absl::InternalError(message);
}

absl::StatusOr<std::string> ReadAll(int fd, const std::string& path) {
  struct stat info {};
  if (fstat(fd, &info) != 0) return ErrnoError("cannot stat", path);
  std::string data(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = pread(fd, data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("cannot read", path);
    done += static_cast<size_t>(n);
  }
  return data;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventLog>> EventLog::Open(
    const std::string& path, Options options,
    const std::function<absl::Status(absl::string_view)>& apply, RecoveryInfo* info) {
  std::error_code error;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create directory ", parent.string(), ": ", error.message()));
  }
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot open", path);
  absl::StatusOr<std::string> data = ReadAll(fd, path);
  if (!data.ok()) {
    close(fd);
    return data.status();
  }
  RecoveryInfo found;
  size_t offset = 0;
  while (offset + kHeaderBytes <= data->size()) {
    const uint32_t length = GetU32(data->data() + offset);
    const uint32_t crc = GetU32(data->data() + offset + 4);
    if (length > kMaxRecordBytes || offset + kHeaderBytes + length > data->size()) break;
    const absl::string_view payload(data->data() + offset + kHeaderBytes, length);
    if (Crc(payload) != crc) break;
    if (absl::Status status = apply(payload); !status.ok()) {
      close(fd);
      return absl::Status(status.code(),
                          absl::StrCat(path, ": record ", found.records + 1, " at offset ", offset,
                                       ": ", status.message()));
    }
    found.records++;
    offset += kHeaderBytes + length;
  }
  // Anything after the last whole record is a write cut short by a crash:
  // it was never acknowledged, so it is dropped.
  found.truncated_bytes = data->size() - offset;
  if (found.truncated_bytes > 0 && ftruncate(fd, static_cast<off_t>(offset)) != 0) {
    close(fd);
    return ErrnoError("cannot truncate torn tail of", path);
  }
  if (lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
    close(fd);
    return ErrnoError("cannot seek", path);
  }
  if (options.fsync && !parent.empty()) {
    // Make the file's directory entry durable too.
    const int dir = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      fsync(dir);
      close(dir);
    }
  }
  if (info != nullptr) *info = found;
  return std::unique_ptr<EventLog>(new EventLog(fd, path, options));
}

EventLog::EventLog(int fd, std::string path, Options options)
    : fd_(fd), path_(std::move(path)), options_(options), writer_([this] { WriterLoop(); }) {}

EventLog::~EventLog() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  writer_.join();
  close(fd_);
}

void EventLog::AppendAsync(std::vector<std::string> records, Completion done) {
  absl::Status failed;
  {
    absl::MutexLock lock(&mutex_);
    if (failure_.ok() && !stopping_) {
      queue_.push_back(Pending{std::move(records), std::move(done)});
      return;
    }
    failed = failure_.ok() ? absl::UnavailableError("event log is closing") : failure_;
  }
  done(failed);
}

absl::Status EventLog::Append(std::vector<std::string> records) {
  absl::Notification durable;
  absl::Status result;
  AppendAsync(std::move(records), [&](absl::Status status) {
    result = std::move(status);
    durable.Notify();
  });
  durable.WaitForNotification();
  return result;
}

uint64_t EventLog::syncs() const {
  absl::MutexLock lock(&mutex_);
  return syncs_;
}

uint64_t EventLog::appended() const {
  absl::MutexLock lock(&mutex_);
  return appended_;
}

void EventLog::WriterLoop() {
  std::string buffer;
  while (true) {
    std::vector<Pending> batch;
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return stopping_ || !queue_.empty();
      };
      mutex_.Await(absl::Condition(&ready));
      if (queue_.empty() && stopping_) return;
      batch.swap(queue_);
    }
    buffer.clear();
    uint64_t records = 0;
    for (const Pending& pending : batch) {
      for (const std::string& record : pending.records) {
        char header[kHeaderBytes];
        PutU32(static_cast<uint32_t>(record.size()), header);
        PutU32(Crc(record), header + 4);
        buffer.append(header, kHeaderBytes);
        buffer.append(record);
        records++;
      }
    }
    absl::Status status;
    {
      absl::MutexLock lock(&mutex_);
      status = failure_;
    }
    for (size_t done = 0; status.ok() && done < buffer.size();) {
      const ssize_t n = write(fd_, buffer.data() + done, buffer.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        status = ErrnoError("cannot write", path_);
        break;
      }
      done += static_cast<size_t>(n);
    }
    if (status.ok() && options_.fsync && fdatasync(fd_) != 0) {
      status = ErrnoError("cannot fdatasync", path_);
    }
    {
      absl::MutexLock lock(&mutex_);
      if (!status.ok() && failure_.ok()) failure_ = status;  // fail-stop
      syncs_++;
      if (status.ok()) appended_ += records;
    }
    for (Pending& pending : batch) pending.done(status);
  }
}

}  // namespace gyre::durable_log
