#ifndef GYRE_CMD_GYRE_RUN_CONSOLE_H_
#define GYRE_CMD_GYRE_RUN_CONSOLE_H_

#include <cstdio>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/execution.pb.h"

namespace gyre::cli {

// Where `gyre run` writes: whole lines and, on a terminal, a progress bar
// kept on the last line. A line written while the bar is shown takes the
// bar's place and the bar is drawn again below it, so the two never mix.
// Thread-safe: lines come from the event loop and from the waiting
// reporter's thread.
class RunConsole {
 public:
  RunConsole(std::FILE* out, bool interactive) : out_(out), interactive_(interactive) {}

  // Writes `text` and a newline.
  void Line(absl::string_view text);

  // Shows `text` as the bar (terminal only; ignored otherwise).
  void Bar(absl::string_view text);

  // Leaves the bar where it is, as the last thing written.
  void EndBar();

  bool interactive() const { return interactive_; }

 private:
  absl::Mutex mutex_;
  std::FILE* const out_;
  const bool interactive_;
  std::string bar_ ABSL_GUARDED_BY(mutex_);
};

// How gyre's commands word states: "running", "timed_out".
std::string TaskStateWord(v1::TaskState state);
std::string ExecutionStateWord(v1::ExecutionState state);

// A line about one task, its id in a column of its own so that the lines of
// `gyre run` and `gyre status` align: "  load                     failed".
std::string TaskLine(absl::string_view task_id, absl::string_view text);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_RUN_CONSOLE_H_
