#ifndef GYRE_SERVICES_AGENT_AGENT_OWNED_DIRS_H_
#define GYRE_SERVICES_AGENT_AGENT_OWNED_DIRS_H_

// Directories an agent makes for itself beside other agents' (its task
// working directories, its task cgroups) hold a lock (flock) for as long as
// the agent lives: the kernel drops it when the process dies, however it
// dies. So a directory nobody holds was left by an agent that is gone
// (kill -9, the OOM killer), and the next agent may remove it.

#include <initializer_list>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::agent {

// Makes `path` (mode `mode`, or takes it if it exists and `existing_ok`),
// opens it and locks it. Returns the descriptor holding the lock, to be
// closed once the directory is gone. FailedPrecondition when it cannot be
// made; Aborted when another live agent holds it, or when it was removed
// between its making and the lock (an agent starting took it for
// abandoned): another name will do.
absl::StatusOr<int> MakeHeldDirectory(const std::string& path, int mode, bool existing_ok);

// Calls `abandoned(path)` for each directory directly under `parent` whose
// name starts with one of `prefixes` and that nobody holds, while holding
// its lock itself (so no other agent starting at the same moment takes it
// too). Symbolic links are never followed.
void ForEachAbandonedDirectory(const std::string& parent,
                               std::initializer_list<absl::string_view> prefixes,
                               absl::FunctionRef<void(const std::string& path, int fd)> abandoned);

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_AGENT_OWNED_DIRS_H_
