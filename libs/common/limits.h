// Gyre's size limits, in one place (the table in docs/limits.md says the
// same). They are one consistent set: whatever the API accepts fits in one
// durable log record and in every message that carries it on (orchestrator
// to agent, agent to exec), so a request is either refused whole, before
// anything is applied, or it can be applied, recorded and run.
//
// How they fit together (checked by the static_asserts below):
//   gRPC request  >= definition + context + slack     (a start is accepted whole)
//   log record    >= definition + context + slack     (ExecutionStarted fits)
//   log record    >= 2 tails + output JSON + error     (TaskResultRecorded fits)
//   ARG_MAX       >  exec budget >= context total      (a task's env fits exec)
//   agent receive >= assignment message >= exec budget (one task always fits)
#ifndef GYRE_LIBS_COMMON_LIMITS_H_
#define GYRE_LIBS_COMMON_LIMITS_H_

#include <cstddef>
#include <cstdint>

namespace gyre::limits {

inline constexpr size_t kKiB = 1024;
inline constexpr size_t kMiB = 1024 * kKiB;

// The largest record the durable log accepts (libs/durable_log/event_log.h
// max_record_bytes): one append carries at most this. Everything below is
// sized so that no record the orchestrator writes can be larger.
inline constexpr size_t kMaxRecordBytes = 64 * kMiB;

// The largest workflow definition (inline in StartExecution or stored by
// Create/UpdateWorkflow), serialized. A million no-op tasks take about
// 17 MiB; 48 MiB leaves room for that with plenty of commands, and for the
// context within one log record.
inline constexpr size_t kMaxDefinitionBytes = 48 * kMiB;

// The largest string field of one task (description, each command element,
// each env value). Half of Linux's MAX_ARG_STRLEN (128 KiB per argv or
// environment string), so that a value with ${VAR} expanded into it still
// has room; the exec budget below is what is checked at dispatch.
inline constexpr size_t kMaxTaskFieldBytes = 64 * kKiB;

// Context: entries, each value, and all keys and values together. The
// context reaches every task as its environment, which Linux bounds at
// ARG_MAX (2 MiB with the default 8 MiB stack) for environment and command
// line together; 1 MiB leaves the other half for the task's own env, its
// command line and what upstream tasks pass on.
inline constexpr size_t kMaxContextEntries = 256;
inline constexpr size_t kMaxContextValueBytes = 64 * kKiB;
inline constexpr size_t kMaxContextTotalBytes = 1 * kMiB;

// The most one task's command line and environment may take at dispatch
// (argv and envp strings with their NULs and pointers, as execve counts
// them): under ARG_MAX (2 MiB) with 512 KiB left for what the agent adds
// (PATH, HOME, LANG, GYRE_OUTPUT). Over it the task fails with a reason
// instead of exec failing with E2BIG.
inline constexpr size_t kMaxTaskExecBytes = 1536 * kKiB;
// Linux's MAX_ARG_STRLEN: one argv or "KEY=value" string, NUL included.
inline constexpr size_t kMaxExecStringBytes = 128 * kKiB;

// The most of each of a result's stdout and stderr the orchestrator keeps
// (an agent's max_output_bytes above it is cut to it before sending; a
// longer tail that arrives anyway is cut on arrival and marked truncated).
inline constexpr size_t kMaxResultTailBytes = 1 * kMiB;
// The most a task may write to $GYRE_OUTPUT (the agent enforces it; a
// result over it fails the attempt).
inline constexpr size_t kMaxOutputJsonBytes = 1 * kMiB;
// A result's error message and a cancel reason: free text for people.
inline constexpr size_t kMaxMessageTextBytes = 4 * kKiB;

// The largest message a gRPC service accepts. A StartExecution of the
// largest definition and context must fit; anything larger is refused by
// gRPC itself (RESOURCE_EXHAUSTED) before the engine sees it.
inline constexpr size_t kMaxGrpcRequestBytes = 52 * kMiB;

// The largest message the agent accepts from the orchestrator, and the most
// the orchestrator puts in one Assignment message (a batch of tasks is split
// across messages to stay under it; one task is at most kMaxTaskExecBytes
// plus a little, so it always fits).
inline constexpr size_t kMaxAgentReceiveBytes = 16 * kMiB;
inline constexpr size_t kMaxAssignmentMessageBytes = 8 * kMiB;

// The most one list page carries in contexts (ListExecutions, FULL view) or
// task outputs (ListTaskRuns): a page stops early (with a next_page_token)
// before its values pass this, so it stays under gRPC's default 4 MiB
// client receive limit. A page always holds at least one item.
inline constexpr size_t kMaxListPageValueBytes = 2 * kMiB;

// What the engine adds to a record besides the definition and context (ids,
// targets, times): generous, it is only used to check the sums below.
inline constexpr size_t kRecordSlackBytes = 2 * kMiB;

static_assert(kMaxDefinitionBytes + kMaxContextTotalBytes + kRecordSlackBytes <= kMaxRecordBytes,
              "an accepted ExecutionStarted must fit in one log record");
static_assert(kMaxDefinitionBytes + kMaxContextTotalBytes + kRecordSlackBytes <=
                  kMaxGrpcRequestBytes,
              "a StartExecution of the largest definition and context must be accepted by gRPC");
static_assert(2 * kMaxResultTailBytes + kMaxOutputJsonBytes + kMaxMessageTextBytes +
                      kRecordSlackBytes <=
                  kMaxRecordBytes,
              "a result must fit in one log record");
static_assert(kMaxContextEntries * kMaxContextValueBytes >= kMaxContextTotalBytes,
              "the total, not entries times value, is the binding context limit");
static_assert(kMaxContextTotalBytes < kMaxTaskExecBytes && kMaxTaskExecBytes < 2 * kMiB,
              "a context within its limit fits the exec budget, which fits ARG_MAX");
static_assert(kMaxTaskFieldBytes < kMaxExecStringBytes &&
                  kMaxContextValueBytes < kMaxExecStringBytes,
              "one field or value fits one exec string");
static_assert(kMaxTaskExecBytes + 64 * kKiB <= kMaxAssignmentMessageBytes &&
                  kMaxAssignmentMessageBytes <= kMaxAgentReceiveBytes,
              "one task's assignment always fits a message the agent accepts");
static_assert(2 * kMaxResultTailBytes + kMiB <= 4 * kMiB,
              "GetTaskLogs (stdout and stderr) fits gRPC's default client receive limit");
static_assert(kMaxListPageValueBytes + kMaxContextTotalBytes <= 4 * kMiB &&
                  kMaxListPageValueBytes + kMaxOutputJsonBytes <= 4 * kMiB,
              "a list page fits gRPC's default client receive limit");

}  // namespace gyre::limits

#endif  // GYRE_LIBS_COMMON_LIMITS_H_
