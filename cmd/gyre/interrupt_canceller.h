#ifndef GYRE_CMD_GYRE_INTERRUPT_CANCELLER_H_
#define GYRE_CMD_GYRE_INTERRUPT_CANCELLER_H_

#include <signal.h>

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace grpc {
class ClientContext;
}

namespace gyre::cli {

// Turns Ctrl-C (SIGINT) into the cancellation of the gRPC call a command is
// blocked in, so that `gyre run` can stop following an execution and say
// how to act on it instead of dying without a word.
//
// A signal handler may do almost nothing safely, so SIGINT's handler only
// writes a byte to a pipe; a thread of the canceller's own waits on the
// pipe, records the interrupt and calls TryCancel() on the attached
// context. The handler is one-shot (SA_RESETHAND): should stopping hang, a
// second Ctrl-C kills the process as before. Destruction restores the
// previous disposition. Should the pipe or the handler not be set up,
// Ctrl-C keeps its default effect and interrupted() stays false.
//
// One per process at a time. Thread-safe.
class InterruptCanceller {
 public:
  InterruptCanceller();
  ~InterruptCanceller();

  InterruptCanceller(const InterruptCanceller&) = delete;
  InterruptCanceller& operator=(const InterruptCanceller&) = delete;

  // Cancels `context` on Ctrl-C (at once if one came already) until
  // Detach(), which must come before `context` is destroyed.
  void Attach(grpc::ClientContext* context);
  void Detach();

  // Whether Ctrl-C was pressed.
  bool interrupted();

 private:
  void WaitForInterrupt();

  int read_fd_ = -1;
  int write_fd_ = -1;
  struct sigaction previous_ {};
  bool installed_ = false;

  absl::Mutex mutex_;
  grpc::ClientContext* attached_ ABSL_GUARDED_BY(mutex_) = nullptr;
  bool interrupted_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;  // last: starts once everything above is set
};

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_INTERRUPT_CANCELLER_H_
