#include "cmd/gyre/command_help.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gyre::cli {
namespace {

// The flag every command that talks to the orchestrator takes.
constexpr absl::string_view kOrchestratorFlag =
    "  --orchestrator=HOST:PORT\n"
    "      the orchestrator to talk to (default $GYRE_ORCHESTRATOR, else 127.0.0.1:50051)\n"
    "  --tls_ca_file=FILE\n"
    "      TLS: the CA the orchestrator's certificate is checked against (default\n"
    "      $GYRE_TLS_CA_FILE; plaintext when neither it nor --tls_cert_file is set)\n"
    "  --tls_cert_file=FILE\n"
    "      this client's certificate, for mutual TLS (default $GYRE_TLS_CERT_FILE)\n"
    "  --tls_key_file=FILE\n"
    "      the key of --tls_cert_file (default $GYRE_TLS_KEY_FILE)\n";

constexpr absl::string_view kSetFlag =
    "  --set KEY=VALUE\n"
    "      a context value for the tasks' ${KEY} (repeatable; default none)\n"
    "  --secret KEY\n"
    "      a secret context value, taken from gyre's own $KEY (never the command line):\n"
    "      it reaches the tasks' environment only, shown as <secret> everywhere else\n"
    "      (gyre run only; repeatable; default none)\n";

struct Help {
  absl::string_view command;
  absl::string_view usage;  // what follows "gyre COMMAND"
  absl::string_view what;
  absl::string_view flags;  // one entry per flag, kOrchestratorFlag added when `remote`
  bool remote;
  bool set;
};

constexpr Help kHelp[] = {
    {"run", "FILE.yaml [flags]",
     "Submits the workflow in FILE.yaml and follows it to the end. Exit 0 when it\n"
     "succeeds, 1 when it fails or is cancelled, 2 for a bad file or flag, 3 when the\n"
     "orchestrator cannot be reached, 130 after Ctrl-C (the execution keeps running).\n",
     "  --detach\n"
     "      print the execution once started and exit 0 without following it (gyre watch\n"
     "      follows it later; default: follow)\n",
     true, true},
    {"schedule", "TASK... [flags]",
     "Schedules an outcome: the task library's TASKs and what they depend on (tasks\n"
     "already satisfied are not run again); follows it as gyre run does, same exit codes.\n",
     "  --detach\n"
     "      print the execution once started and exit 0 without following it (default:\n"
     "      follow)\n",
     true, true},
    {"watch", "EXECUTION [flags]",
     "Follows an execution again from its first event, as gyre run does (after Ctrl-C\n"
     "stopped following it, or from another terminal); same exit codes. EXECUTION is\n"
     "executions/ID or ID.\n",
     "", true, false},
    {"status", "EXECUTION [flags]",
     "An execution's state and context, then one line per task with, below it, why a\n"
     "waiting task waits (gyre why says more) and every attempt (agent, start,\n"
     "duration, how it ended, lost ones with why). EXECUTION is executions/ID or ID.\n",
     "", true, false},
    {"why", "EXECUTION [TASK] [flags]",
     "Why tasks are not running: for every task of the execution that waits (or for\n"
     "TASK), the reason: its dependencies and their states, the requirement no\n"
     "connected agent meets (queue, label, cpu, memory, gpus) with the closest agent,\n"
     "all matching slots busy with its queue position and estimated start, paused,\n"
     "retry backoff until when, or its worker pool at its max.\n",
     "", true, false},
    {"list", "[flags]", "Recent executions, newest first.\n",
     "  --limit=N\n"
     "      how many (1..1000; default 20)\n"
     "  --workflow=NAME\n"
     "      only executions of this workflow (default all)\n"
     "  --state=STATE[,STATE]...\n"
     "      only executions in these states: pending, running, paused, succeeded,\n"
     "      failed, cancelled (default all)\n",
     true, false},
    {"logs", "EXECUTION [TASK] [flags]",
     "A task attempt's stored stdout and stderr, byte for byte; without TASK, every\n"
     "attempt's output in the order they began, each under a ==> header.\n",
     "  --attempt=N\n"
     "      which attempt of TASK (default the latest)\n"
     "  --follow\n"
     "      tail the output live as tasks write it, until TASK (or, without TASK, the\n"
     "      execution) ends; every task's lines are prefixed with its id (default off)\n",
     true, false},
    {"cancel", "EXECUTION [flags]", "Cancels an execution; its running tasks are stopped.\n",
     "  --reason=TEXT\n"
     "      why, recorded with the execution (default none)\n",
     true, false},
    {"pause", "EXECUTION [flags]",
     "Pauses an execution: no new task starts; running ones finish.\n", "", true, false},
    {"resume", "EXECUTION [flags]", "Resumes a paused execution.\n", "", true, false},
    {"queues", "[flags]",
     "Each queue: tasks waiting (depth), running, connected agents, free slots, and the\n"
     "workers the autoscaling signal asks for (desired workers).\n",
     "", true, false},
    {"agents", "[flags]",
     "The agents the orchestrator knows: state, queues, slots (all and free), version, host.\n", "",
     true, false},
    {"library", "[flags]",
     "The orchestrator's task library: the tasks gyre schedule takes as targets and\n"
     "workflow files may depend on, with what they depend on.\n",
     "", true, false},
    {"workflows", "list|show NAME [flags]",
     "The workflows the orchestrator stores (CreateWorkflow; gyre run runs a file\n"
     "without storing it): list shows each one's latest version, task count, creation\n"
     "and description; show NAME its context and tasks (dependencies, queue, command).\n",
     "  --version=N\n"
     "      which version for show (default the latest)\n",
     true, false},
    {"validate", "FILE.yaml [flags]",
     "Checks a workflow file without running it. A dependency the file does not define\n"
     "is looked up in the task library: the files of --task_library_dir, else the\n"
     "library of a reachable orchestrator (--orchestrator); with neither, the error\n"
     "says so.\n",
     "  --task_library_dir=DIR\n"
     "      task-library YAML files the workflow may depend on (default: ask the\n"
     "      orchestrator)\n",
     true, false},
    {"import-wfcommons", "TRACE.json [flags]",
     "Converts a WfCommons trace (JSON) into a Gyre workflow (YAML): each task sleeps\n"
     "its recorded runtime, declares its recorded CPU and memory, and carries its\n"
     "input size as env input_bytes and input_count (context values the predictor\n"
     "learns from).\n",
     "  --scale=X\n"
     "      each task sleeps its recorded runtime times X (default 1)\n"
     "  --queue=QUEUE\n"
     "      the queue of every task (default default)\n"
     "  --name=NAME\n"
     "      the workflow's name (default derived from the trace)\n"
     "  --output=FILE\n"
     "      where the YAML goes (default stdout)\n",
     false, false},
    {"hash-token", "[TOKEN]",
     "Prints the hash of an agent join token (TOKEN, else the first line of stdin) for\n"
     "the orchestrator's agent_join_token_hashes; agents present the token itself\n"
     "(join_token, join_token_file or GYRE_JOIN_TOKEN). Make a token with\n"
     "  openssl rand -hex 32\n",
     "", false, false},
    {"analyze", "FILE.yaml|workflows/NAME|executions/ID [flags]",
     "Asks the optimizer for a workflow's analysis: critical path and its share of the\n"
     "work, width over time under the pool limits, bottlenecks with their evidence, and\n"
     "recommendations with their effect measured by a what-if simulation. An execution\n"
     "(finished) gives actual durations. With --apply, stores the chosen recommendations\n"
     "as a new version of workflows/NAME and prints the diff (docs/optimizer.md).\n",
     "  --optimizer=HOST:PORT\n"
     "      the optimizer (default $GYRE_OPTIMIZER, else the orchestrator's address)\n"
     "  --pool QUEUE=MAX\n"
     "      a pool's max slots for the simulation (repeatable; default unlimited)\n"
     "  --history EXECUTION\n"
     "      a finished execution whose attempts are history (repeatable; default none)\n"
     "  --apply=ID[,ID...]\n"
     "      apply these recommendations as a new version (workflows/NAME only; default\n"
     "      none: analyze only)\n"
     "  --dry_run=true|false\n"
     "      with --apply: print the diff, store nothing (default false)\n",
     true, false},
    {"plan", "FILE.yaml [flags]",
     "Before anything runs: each task's predicted duration, memory and CPU with their\n"
     "p10-p90 intervals and the level of history that answered (identity, task,\n"
     "program, queue, global, prior), the predicted critical path and finish time (the\n"
     "optimizer's critical-path code on the predicted durations) and, with --optimizer,\n"
     "the optimizer's summary. With no predictor reachable it says so and uses the\n"
     "declared values (docs/predictor.md).\n",
     "  --predictor=HOST:PORT\n"
     "      the predictor (default $GYRE_PREDICTOR, else the orchestrator's address)\n"
     "  --optimizer=HOST:PORT\n"
     "      also print the optimizer's summary (default $GYRE_OPTIMIZER, else none)\n"
     "  --json\n"
     "      one JSON object instead of the table (default: the table)\n",
     true, true},
    {"migrate", "up|status --postgres_dsn=DSN [flags]",
     "Applies (up) or shows (status) the migrations of the PostgreSQL state store's\n"
     "schema, as the orchestrator applies them at start with store: postgres; for\n"
     "operators who migrate before rolling out. Exit 0 done, 1 failed (the database\n"
     "said why), 2 bad arguments.\n",
     "  --postgres_dsn=DSN\n"
     "      libpq connection string of the database, password apart, e.g. \"host=db\n"
     "      dbname=gyre user=gyre\" (required: no default)\n"
     "  --postgres_password_file=FILE\n"
     "      file holding the password (default $GYRE_POSTGRES_PASSWORD, else none;\n"
     "      not both)\n",
     false, false},
    {"version", "", "Prints the version (also gyre --version).\n", "", false, false},
    {"completion", "bash|zsh",
     "Prints a completion script for gyre's commands and flags; load it with\n"
     "  source <(gyre completion bash)      (bash; or save it as\n"
     "                                       /etc/bash_completion.d/gyre)\n"
     "  source <(gyre completion zsh)       (zsh, after compinit; or save it as _gyre\n"
     "                                       in a directory of $fpath)\n",
     "", false, false},
};

}  // namespace

bool AsksForHelp(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "-h" || arg == "--help" || arg == "-help") return true;
  }
  return false;
}

std::optional<std::string> CommandHelp(absl::string_view command) {
  for (const Help& help : kHelp) {
    if (help.command != command) continue;
    std::string text = absl::StrCat("usage: gyre ", help.command, help.usage.empty() ? "" : " ",
                                    help.usage, "\n\n", help.what);
    const bool any_flag = help.remote || help.set || !help.flags.empty();
    absl::StrAppend(&text, any_flag ? "\nflags:\n" : "", help.set ? kSetFlag : "", help.flags,
                    help.remote ? kOrchestratorFlag : "", "  -h, --help\n      this help\n");
    return text;
  }
  return std::nullopt;
}

namespace {

// Each command (and `dev`, `help`) with the flags it takes: the one table
// both shells' completion is generated from. A flag that takes a value
// ends in "=".
std::vector<std::pair<std::string, std::vector<std::string>>> CompletionTable(
    const std::vector<std::string>& dev_flags) {
  std::vector<std::pair<std::string, std::vector<std::string>>> table = {{"dev", dev_flags},
                                                                         {"help", {}}};
  for (const Help& help : kHelp) {
    // The flag names are the help's lines that start with "  --".
    std::string text =
        absl::StrCat(help.set ? kSetFlag : "", help.flags, help.remote ? kOrchestratorFlag : "");
    std::vector<std::string> flags;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (!absl::ConsumePrefix(&line, "  --")) continue;
      const size_t end = line.find_first_of("= ");
      const bool valued = end != absl::string_view::npos;
      flags.push_back(absl::StrCat("--", line.substr(0, end), valued ? "=" : ""));
    }
    flags.emplace_back("--help");
    table.emplace_back(std::string(help.command), std::move(flags));
  }
  return table;
}

std::string CommandNames(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& table) {
  std::vector<std::string> names;
  for (const auto& [command, flags] : table) names.push_back(command);
  return absl::StrJoin(names, " ");
}

}  // namespace

std::string BashCompletion(const std::vector<std::string>& dev_flags) {
  const auto table = CompletionTable(dev_flags);
  std::string cases;
  for (const auto& [command, flags] : table) {
    absl::StrAppend(&cases, "    ", command, ") flags=\"", absl::StrJoin(flags, " "), "\";;\n");
  }
  return absl::StrCat(
      "# bash completion for gyre (gyre completion bash)\n"
      "_gyre() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" flags=\"\"\n"
      "  if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
      "    COMPREPLY=($(compgen -W \"",
      CommandNames(table),
      " --help --version\" -- \"$cur\"))\n"
      "    return\n"
      "  fi\n"
      "  case \"${COMP_WORDS[1]}\" in\n",
      cases,
      "  esac\n"
      "  if [[ \"$cur\" == -* ]]; then\n"
      "    COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n"
      "    # A flag that takes a value completes to \"--flag=\", without a space.\n"
      "    [[ \"${COMPREPLY[0]}\" == *= ]] && compopt -o nospace 2>/dev/null\n"
      "  else\n"
      "    COMPREPLY=($(compgen -f -- \"$cur\"))\n"
      "  fi\n"
      "}\n"
      "complete -F _gyre gyre\n");
}

std::string ZshCompletion(const std::vector<std::string>& dev_flags) {
  const auto table = CompletionTable(dev_flags);
  std::string cases;
  for (const auto& [command, flags] : table) {
    std::vector<std::string> valued;
    std::vector<std::string> plain;
    for (const std::string& flag : flags) {
      (absl::EndsWith(flag, "=") ? valued : plain).push_back(flag);
    }
    absl::StrAppend(&cases, "    ", command, ") valued=(", absl::StrJoin(valued, " "), "); plain=(",
                    absl::StrJoin(plain, " "), ");;\n");
  }
  return absl::StrCat(
      "#compdef gyre\n"
      "# zsh completion for gyre (gyre completion zsh)\n"
      "_gyre() {\n"
      "  local -a commands valued plain\n"
      "  if (( CURRENT == 2 )); then\n"
      "    commands=(",
      CommandNames(table),
      " --help --version)\n"
      "    compadd -a commands\n"
      "    return\n"
      "  fi\n"
      "  case \"${words[2]}\" in\n",
      cases,
      "  esac\n"
      "  if [[ \"$PREFIX\" == -* ]]; then\n"
      "    # A flag that takes a value completes to \"--flag=\", without a space.\n"
      "    compadd -S '' -a valued\n"
      "    compadd -a plain\n"
      "  else\n"
      "    _files\n"
      "  fi\n"
      "}\n"
      "if [[ \"${funcstack[1]}\" == _gyre ]]; then _gyre \"$@\"; else compdef _gyre gyre; fi\n");
}

}  // namespace gyre::cli
