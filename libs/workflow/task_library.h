#ifndef GYRE_LIBS_WORKFLOW_TASK_LIBRARY_H_
#define GYRE_LIBS_WORKFLOW_TASK_LIBRARY_H_

#include "absl/status/status.h"
#include "gyre/v1/workflow.pb.h"

namespace gyre::workflow {

// Lets a workflow build on the task library (see LoadTaskLibrary): a
// dependency naming no task of `definition` but a task of `library` pulls
// that task into `definition`, with every library task it depends on,
// transitively; they are appended after the workflow's own tasks, in the
// library's order, and take the workflow's default queue like its own tasks.
//
// A pulled-in task whose id is also one of the workflow's own tasks must be
// that same task (as when a client already pulled it in): a workflow never
// silently replaces a task the library's tasks depend on. Errors are
// InvalidArgument naming the task, e.g.
//   task "report": unknown dependency "clen": no task of this workflow or of
//   the task library has that id (did you mean "clean"?)
// Idempotent: including twice changes nothing.
absl::Status IncludeLibraryTasks(const gyre::v1::WorkflowDefinition& library,
                                 gyre::v1::WorkflowDefinition* definition);

}  // namespace gyre::workflow

#endif  // GYRE_LIBS_WORKFLOW_TASK_LIBRARY_H_
