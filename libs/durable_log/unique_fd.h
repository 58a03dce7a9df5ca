#ifndef GYRE_LIBS_DURABLE_LOG_UNIQUE_FD_H_
#define GYRE_LIBS_DURABLE_LOG_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace gyre::durable_log {

// Owns a POSIX file descriptor and closes it when destroyed. Move-only.
// Not thread-safe: one owner at a time.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_UNIQUE_FD_H_
