#include "cmd/gyre/run_console.h"

namespace gyre::cli {

void RunConsole::Line(absl::string_view text) {
  absl::MutexLock lock(&mutex_);
  // "\r\033[K": back to the start of the bar's line and clear it.
  if (!bar_.empty()) std::fputs("\r\033[K", out_);
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fputc('\n', out_);
  if (!bar_.empty()) std::fputs(bar_.c_str(), out_);
  std::fflush(out_);
}

void RunConsole::Bar(absl::string_view text) {
  if (!interactive_) return;
  absl::MutexLock lock(&mutex_);
  bar_ = std::string(text);
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

}  // namespace gyre::cli
