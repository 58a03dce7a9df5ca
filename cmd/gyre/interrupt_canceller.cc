#include "cmd/gyre/interrupt_canceller.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace gyre::cli {
namespace {

constexpr char kInterrupt = 'i';
constexpr char kStop = 's';

// Where the handler writes: a lock-free atomic is safe to read in a handler.
std::atomic<int> interrupt_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free);

void OnInterrupt(int /*signal*/) {
  const int saved_errno = errno;  // the interrupted code may be about to read it
  const int fd = interrupt_fd.load();
  if (fd >= 0) (void)!write(fd, &kInterrupt, 1);
  errno = saved_errno;
}

}  // namespace

InterruptCanceller::InterruptCanceller() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return;
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  interrupt_fd.store(write_fd_);
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: calls the signal lands in resume rather than fail with EINTR.
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  installed_ = sigaction(SIGINT, &action, &previous_) == 0;
  thread_ = std::thread([this] { WaitForInterrupt(); });
}

InterruptCanceller::~InterruptCanceller() {
  if (read_fd_ < 0) return;
  if (installed_) sigaction(SIGINT, &previous_, nullptr);
  interrupt_fd.store(-1);
  (void)!write(write_fd_, &kStop, 1);
  thread_.join();
  close(read_fd_);
  close(write_fd_);
}

void InterruptCanceller::WaitForInterrupt() {
  for (;;) {
    char byte = 0;
    const ssize_t n = read(read_fd_, &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || byte == kStop) return;
    absl::MutexLock lock(&mutex_);
    interrupted_ = true;
    if (attached_ != nullptr) attached_->TryCancel();
  }
}

void InterruptCanceller::Attach(grpc::ClientContext* context) {
  absl::MutexLock lock(&mutex_);
  attached_ = context;
  // A context cancelled before its call starts cancels the call as it does.
  if (interrupted_) context->TryCancel();
}

void InterruptCanceller::Detach() {
  absl::MutexLock lock(&mutex_);
  attached_ = nullptr;
}

bool InterruptCanceller::interrupted() {
  absl::MutexLock lock(&mutex_);
  return interrupted_;
}

}  // namespace gyre::cli
