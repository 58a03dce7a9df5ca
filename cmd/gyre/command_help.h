#ifndef GYRE_CMD_GYRE_COMMAND_HELP_H_
#define GYRE_CMD_GYRE_COMMAND_HELP_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace gyre::cli {

// True when argv[2...] (argv[1] is the subcommand) asks for help: -h,
// --help or -help before any "--".
bool AsksForHelp(int argc, char** argv);

// The help of subcommand `command` (usage, what it does, each flag with its
// default), for `gyre COMMAND --help`; nullopt for a command it does not
// know (`gyre dev` prints its own: it has the services' flags).
std::optional<std::string> CommandHelp(absl::string_view command);

// `gyre completion bash`: a bash script that completes gyre's commands and
// each command's flags (from the same table as the help), files otherwise.
// `dev_flags` are gyre dev's ("--key=" for a flag that takes a value),
// which come from its config schema (DevFlagNames).
std::string BashCompletion(const std::vector<std::string>& dev_flags);
// `gyre completion zsh`: the same completion, from the same table, for zsh.
std::string ZshCompletion(const std::vector<std::string>& dev_flags);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_COMMAND_HELP_H_
