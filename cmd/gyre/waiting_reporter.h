#ifndef GYRE_CMD_GYRE_WAITING_REPORTER_H_
#define GYRE_CMD_GYRE_WAITING_REPORTER_H_

#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cmd/gyre/run_console.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"

namespace gyre::cli {

// Says why tasks of the execution `gyre run` follows are not being taken.
// A ready task no connected agent can take (none serves its queue, or none
// offers the labels and resources it needs) would otherwise wait with
// nothing shown. Once a task has been ready for `patience`, the
// orchestrator is asked (GetTaskRun computes the reason) and, if it names
// one, a line says so; again only when the reason changes. A task that
// merely waits for a free slot has no reason and gets no line.
//
// Tasks with the same queue, resources and agent selector wait for the
// same reason, so one of them (the longest ready) is asked for all: a
// thousand stuck tasks cost one call a second, not a thousand. At most
// eight groups are asked a round (the longest waiting first): without the
// definition (`gyre schedule`) every task is a group of its own.
//
// Thread-safety: Update() from the event loop; the questions are asked on
// the reporter's own thread, with no lock held across the call.
class WaitingReporter {
 public:
  WaitingReporter(v1::OrchestratorService::Stub* stub, std::string execution,
                  const v1::WorkflowDefinition& definition, RunConsole* console,
                  absl::Duration patience = absl::Seconds(2));
  // Stops the reporter's thread (an answer it waits for ends within a second).
  ~WaitingReporter();

  WaitingReporter(const WaitingReporter&) = delete;
  WaitingReporter& operator=(const WaitingReporter&) = delete;

  // A task's new state, from the execution's events.
  void Update(const std::string& task_id, v1::TaskState state);

 private:
  // Ready tasks that wait for the same reason.
  struct Group {
    absl::flat_hash_map<std::string, absl::Time> ready_since;  // by task id
    std::string shown_reason;                                  // the last reason printed ("" none)
    bool asked = false;                                        // answered at least once
  };
  // A group's longest-ready task, when it has waited long enough.
  struct Question {
    std::string group;
    std::string task_id;
  };

  void Loop();
  std::vector<Question> DueQuestions(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Answer(const Question& question, const v1::TaskRun& run);

  v1::OrchestratorService::Stub* const stub_;
  const std::string execution_;
  RunConsole* const console_;
  const absl::Duration patience_;
  // Task id -> group key (queue, resources, agent selector), from the
  // definition; a task not in it is its own group.
  absl::flat_hash_map<std::string, std::string> group_of_;

  absl::Mutex mutex_;
  std::map<std::string, Group> groups_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;  // last: starts once everything above is built
};

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_WAITING_REPORTER_H_
