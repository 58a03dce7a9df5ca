#ifndef GYRE_CMD_GYRE_TERMINAL_TEXT_H_
#define GYRE_CMD_GYRE_TERMINAL_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace gyre::cli {

// Free text the CLI prints that others wrote — cancel reasons, task reasons
// and errors, status messages, names from requests — made safe for a
// terminal: every control character (C0, DEL and the C1 range, raw or
// UTF-8 encoded) is shown escaped (\x1b, \n, \u009b...), so that no such
// text can move the cursor, rewrite earlier lines, retitle the window or
// feed the terminal an escape sequence. Other bytes pass as they are. Not
// for a task's own stdout (`gyre logs` prints that as the task wrote it).
std::string TerminalSafe(absl::string_view text);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_TERMINAL_TEXT_H_
