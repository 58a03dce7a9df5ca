#include "libs/durable_log/mapped_file.h"

#include <sys/mman.h>

#include <cerrno>
#include <utility>

#include "libs/durable_log/file_io.h"

namespace gyre::durable_log {

absl::StatusOr<MappedFile> MappedFile::Map(int fd, size_t length, const std::string& path) {
  if (length == 0) return MappedFile();
  void* address = mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) return ErrnoError("mmap", path, errno);
  // Hints only (their failure is harmless): read ahead early and far.
  madvise(address, length, MADV_SEQUENTIAL);
  madvise(address, length, MADV_WILLNEED);
  return MappedFile(address, length);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : address_(std::exchange(other.address_, nullptr)), length_(std::exchange(other.length_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    Unmap();
    address_ = std::exchange(other.address_, nullptr);
    length_ = std::exchange(other.length_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() { Unmap(); }

void MappedFile::Unmap() {
  if (address_ != nullptr) munmap(address_, length_);
  address_ = nullptr;
  length_ = 0;
}

}  // namespace gyre::durable_log
