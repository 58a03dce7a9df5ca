#include "cmd/gyre/run_console.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "cmd/gyre/terminal_text.h"

namespace gyre::cli {

void RunConsole::Line(absl::string_view text) {
  absl::MutexLock lock(&mutex_);
  // "\r\033[K": back to the start of the bar's line and clear it.
  if (!bar_.empty()) std::fputs("\r\033[K", out_);
  // Lines carry reasons and names others wrote: no control reaches the
  // terminal but the bar's own.
  const std::string safe = TerminalSafe(text);
  std::fwrite(safe.data(), 1, safe.size(), out_);
  std::fputc('\n', out_);
  if (!bar_.empty()) std::fputs(bar_.c_str(), out_);
  std::fflush(out_);
}

void RunConsole::Bar(absl::string_view text) {
  if (!interactive_) return;
  absl::MutexLock lock(&mutex_);
  bar_ = TerminalSafe(text);
  std::fputs("\r", out_);
  std::fputs(bar_.c_str(), out_);
  std::fflush(out_);
}

void RunConsole::EndBar() {
  absl::MutexLock lock(&mutex_);
  if (bar_.empty()) return;
  std::fputc('\n', out_);
  std::fflush(out_);
  bar_.clear();
}

std::string TaskStateWord(v1::TaskState state) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::TaskState_Name(state), "TASK_"));
}

std::string ExecutionStateWord(v1::ExecutionState state) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::ExecutionState_Name(state), "EXECUTION_"));
}

std::string TaskLine(absl::string_view task_id, absl::string_view text) {
  return absl::StrFormat("  %-24s %s", task_id, text);
}

}  // namespace gyre::cli
