#ifndef GYRE_SERVICES_ORCHESTRATOR_TASK_RUN_PAGE_STREAM_H_
#define GYRE_SERVICES_ORCHESTRATOR_TASK_RUN_PAGE_STREAM_H_

#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "services/orchestrator/client_limits.h"
#include "services/orchestrator/stream_workers.h"

namespace gyre::orchestrator {

// One StreamTaskRuns call answered here: every page ListTaskRuns would
// return, written one after the other, while the next page is built. With
// ListTaskRuns paging, the orchestrator builds and serializes a page while
// the client waits, then the client parses it while the orchestrator
// waits; here the two overlap (issue 21: `gyre status` of 10,000 tasks is
// ten pages).
//
// At most two pages exist at once, each on an arena of its own: the one
// being written and the one being built. One write is in flight at a time;
// a page built before the last write ended waits for it. The first page is
// built by the handler (FillFirst: its errors, "not owned" included, are
// the call's, before anything is written), the second on a StreamWorkers
// thread (the handler's writes start only once it returns), every later
// one on the thread that saw the previous write end (OnWriteDone). A
// cancelled call ends once the page being built, if any, is done.
//
// Lifetime: owned by the caller until Refuse or Start hands it to gRPC,
// then deleted by OnDone. Thread-safe.
class TaskRunPageStream final : public grpc::ServerWriteReactor<gyre::v1::ListTaskRunsResponse> {
 public:
  // Fills `page` (empty, on an arena) with the page `request` asks for,
  // as WorkflowEngine::ListTaskRuns(request, response) does.
  using FillPage = absl::AnyInvocable<absl::Status(const gyre::v1::ListTaskRunsRequest& request,
                                                   gyre::v1::ListTaskRunsResponse* page)>;

  // `workers`: not owned, outlives the call. `call`: the caller's slot among
  // its calls in flight (ClientLimits), held until the stream ends.
  TaskRunPageStream(const gyre::v1::ListTaskRunsRequest& request, FillPage fill,
                    StreamWorkers* workers, ClientLimits::Slot call);

  // Builds the first page; may run again (each time from the request's
  // page_token) while the stream is the caller's.
  absl::Status FillFirst();

  // Ends the call with `status` at once (a refused request).
  TaskRunPageStream* Refuse(grpc::Status status);

  // Writes the first page (FillFirst succeeded) and then the rest.
  TaskRunPageStream* Start();

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  // A page and the arena it lives on, emptied before each use.
  struct Page {
    google::protobuf::Arena arena;
    gyre::v1::ListTaskRunsResponse* message = nullptr;
  };

  // How the call ends, decided under the lock and done after it: ending
  // it may delete this at once (OnDone), so it is the last thing a thread
  // does with it.
  struct Ending {
    bool end = false;
    grpc::Status status;                                        // without last_page
    const gyre::v1::ListTaskRunsResponse* last_page = nullptr;  // written with OK
  };
  void End(Ending ending);

  // Fills `page` with the page request_ names, then points request_ at the
  // next one. Only the one thread that is filling calls it.
  absl::Status Fill(Page& page);
  // Builds pages until one waits for a write in flight, the last is
  // written, or the call ends. Called with filling_ set.
  void FillAhead();
  // Starts writing pages_[index]; the last page is left to the Ending
  // (written with the status).
  Ending WriteLocked(int index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Ending FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // page_token: the next page to build. Touched only by the thread filling.
  gyre::v1::ListTaskRunsRequest request_;
  FillPage fill_;
  StreamWorkers* const workers_;
  ClientLimits::Slot call_;
  Page pages_[2];

  absl::Mutex mutex_;
  int writing_ ABSL_GUARDED_BY(mutex_) = -1;  // the page being written, or -1
  int ready_ ABSL_GUARDED_BY(mutex_) = -1;    // a page built, waiting for that write
  bool filling_ ABSL_GUARDED_BY(mutex_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  // A later page's error, sent once the write in flight ends.
  grpc::Status failed_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_TASK_RUN_PAGE_STREAM_H_
