#include "libs/durable_log/snapshot_store.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/durable_log/file_io.h"

namespace gyre::durable_log {
namespace {

constexpr absl::string_view kMagic = "GYRESNP1";
constexpr absl::string_view kPrefix = "snapshot-";
constexpr absl::string_view kTempSuffix = ".tmp";
constexpr size_t kDigits = 20;
constexpr size_t kHeaderBytes = 8 + 8 + 8 + 4;

void PutLittleEndian(uint64_t value, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

uint64_t GetLittleEndian(const char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  return value;
}

uint32_t Checksum(absl::string_view header_prefix, absl::string_view state) {
  uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(header_prefix.data()),
                    static_cast<uInt>(header_prefix.size()));
  // crc32_z takes a size_t length: snapshots may exceed 4 GiB.
  crc = crc32_z(crc, reinterpret_cast<const Bytef*>(state.data()), state.size());
  return static_cast<uint32_t>(crc);
}

absl::Status WriteTempFile(const std::string& temp, absl::string_view header,
                           absl::string_view state, bool sync) {
  absl::StatusOr<UniqueFd> fd = OpenFile(temp, O_WRONLY | O_CREAT | O_TRUNC);
  if (!fd.ok()) return fd.status();
  if (absl::Status s = WriteFully(fd->get(), header, 0, temp); !s.ok()) return s;
  if (absl::Status s = WriteFully(fd->get(), state, static_cast<off_t>(header.size()), temp);
      !s.ok()) {
    return s;
  }
  return sync ? SyncFile(fd->get(), temp) : absl::OkStatus();
}

std::string FileName(uint64_t index) { return absl::StrFormat("%s%020d", kPrefix, index); }

std::optional<uint64_t> ParseFileName(absl::string_view name) {
  if (name.size() != kPrefix.size() + kDigits || !absl::StartsWith(name, kPrefix)) {
    return std::nullopt;
  }
  const absl::string_view digits = name.substr(kPrefix.size());
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  uint64_t index = 0;
  if (!absl::SimpleAtoi(digits, &index)) return std::nullopt;
  return index;
}

}  // namespace

std::string SnapshotStore::PathFor(uint64_t index) const {
  return absl::StrCat(dir_, "/", FileName(index));
}

absl::Status SnapshotStore::Write(uint64_t index, absl::string_view state) const {
  std::string header(kMagic);
  PutLittleEndian(index, 8, &header);
  PutLittleEndian(state.size(), 8, &header);
  PutLittleEndian(Checksum(header, state), 4, &header);

  const std::string path = PathFor(index);
  const std::string temp = absl::StrCat(path, kTempSuffix);
  if (absl::Status status = WriteTempFile(temp, header, state, sync_); !status.ok()) {
    unlink(temp.c_str());
    return status;
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    return ErrnoError(absl::StrCat("rename ", temp, " to"), path, errno);
  }
  return sync_ ? SyncDirectory(dir_) : absl::OkStatus();
}

absl::StatusOr<Snapshot> SnapshotStore::Load(uint64_t index) const {
  const std::string path = PathFor(index);
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  if (!bytes.ok()) return bytes.status();
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("snapshot ", path, " is corrupt: ", why));
  };
  if (bytes->size() < kHeaderBytes) return corrupt("shorter than its header");
  if (!absl::StartsWith(*bytes, kMagic)) return corrupt("bad magic");
  const uint64_t stored_index = GetLittleEndian(bytes->data() + 8, 8);
  const uint64_t length = GetLittleEndian(bytes->data() + 16, 8);
  const uint32_t crc = static_cast<uint32_t>(GetLittleEndian(bytes->data() + 24, 4));
  if (stored_index != index) {
    return corrupt(absl::StrCat("holds index ", stored_index, ", its name says ", index));
  }
  if (length != bytes->size() - kHeaderBytes) {
    return corrupt(absl::StrCat("header says ", length, " state bytes, file has ",
                                bytes->size() - kHeaderBytes));
  }
  const absl::string_view state = absl::string_view(*bytes).substr(kHeaderBytes);
  if (Checksum(absl::string_view(*bytes).substr(0, 24), state) != crc) {
    return corrupt("checksum mismatch");
  }
  Snapshot snapshot;
  snapshot.index = index;
  bytes->erase(0, kHeaderBytes);
  snapshot.state = *std::move(bytes);
  return snapshot;
}

absl::StatusOr<std::vector<uint64_t>> SnapshotStore::List() const {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_);
  if (!names.ok()) return names.status();
  std::vector<uint64_t> indexes;
  for (const std::string& name : *names) {
    if (std::optional<uint64_t> index = ParseFileName(name)) indexes.push_back(*index);
  }
  std::sort(indexes.begin(), indexes.end());
  return indexes;
}

absl::Status SnapshotStore::Remove(uint64_t index) const {
  const std::string path = PathFor(index);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("delete", path, errno);
  return absl::OkStatus();
}

absl::Status SnapshotStore::Quarantine(uint64_t index) const {
  const std::string path = PathFor(index);
  const std::string target = absl::StrCat(path, ".corrupt");
  if (rename(path.c_str(), target.c_str()) != 0) {
    return ErrnoError(absl::StrCat("rename ", path, " to"), target, errno);
  }
  return sync_ ? SyncDirectory(dir_) : absl::OkStatus();
}

absl::Status SnapshotStore::RemoveTemporaryFiles(std::vector<std::string>* removed) const {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    if (!absl::StartsWith(name, kPrefix) || !absl::EndsWith(name, kTempSuffix)) continue;
    const std::string path = absl::StrCat(dir_, "/", name);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("delete", path, errno);
    removed->push_back(path);
  }
  return absl::OkStatus();
}

}  // namespace gyre::durable_log
