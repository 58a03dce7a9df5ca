#ifndef GYRE_LIBS_DURABLE_LOG_MAPPED_FILE_H_
#define GYRE_LIBS_DURABLE_LOG_MAPPED_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::durable_log {

// A read-only mmap(2) of the first `length` bytes of a file, advised for
// sequential reading: recovery and replay read segments through it without
// copying. The mapping stays valid after the file is unlinked. Move-only;
// the bytes may be read from any number of threads.
class MappedFile {
 public:
  // Maps [0, length) of the open file `fd`; `path` is for error messages.
  // A zero length maps nothing and yields an empty view.
  static absl::StatusOr<MappedFile> Map(int fd, size_t length, const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  absl::string_view data() const { return {static_cast<const char*>(address_), length_}; }

 private:
  MappedFile(void* address, size_t length) : address_(address), length_(length) {}
  void Unmap();

  void* address_ = nullptr;
  size_t length_ = 0;
};

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_MAPPED_FILE_H_
