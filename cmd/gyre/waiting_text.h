#ifndef GYRE_CMD_GYRE_WAITING_TEXT_H_
#define GYRE_CMD_GYRE_WAITING_TEXT_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gyre/v1/execution.pb.h"

namespace gyre::cli {

// A WaitingExplanation kind in a few words: "slots busy", "no matching agent".
std::string WaitingKindWord(gyre::v1::WaitingExplanation::Kind kind);

// What `gyre why` prints for one task, `now` the client's clock (estimated
// starts and retries are shown as times and as "in 2m"): the server's
// message first, then the structured parts it has, one per line. Not made
// terminal-safe here (the caller does, as for every server text).
std::vector<std::string> WaitingLines(const gyre::v1::WaitingExplanation& why, absl::Time now);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_WAITING_TEXT_H_
