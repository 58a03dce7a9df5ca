#include "services/orchestrator/task_run_page_stream.h"

#include <string>
#include <utility>

#include "libs/common/status_mapping.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

TaskRunPageStream::TaskRunPageStream(const v1::ListTaskRunsRequest& request, FillPage fill,
                                     StreamWorkers* workers, ClientLimits::Slot call)
    : request_(request), fill_(std::move(fill)), workers_(workers), call_(std::move(call)) {}

absl::Status TaskRunPageStream::Fill(Page& page) {
  page.arena.Reset();  // the page it held was written
  page.message = google::protobuf::Arena::CreateMessage<v1::ListTaskRunsResponse>(&page.arena);
  if (absl::Status status = fill_(request_, page.message); !status.ok()) return status;
  request_.set_page_token(page.message->next_page_token());
  return absl::OkStatus();
}

absl::Status TaskRunPageStream::FillFirst() {
  const std::string first = request_.page_token();
  absl::Status status = Fill(pages_[0]);
  if (!status.ok()) request_.set_page_token(first);  // tried again elsewhere, or here
  return status;
}

TaskRunPageStream* TaskRunPageStream::Refuse(grpc::Status status) {
  Ending ending;
  {
    absl::MutexLock lock(&mutex_);
    ending = FinishLocked(std::move(status));
  }
  End(std::move(ending));
  return this;
}

TaskRunPageStream* TaskRunPageStream::Start() {
  Ending ending;
  {
    absl::MutexLock lock(&mutex_);
    ending = WriteLocked(0);
    if (!ending.end) filling_ = true;
  }
  if (ending.end) {
    End(std::move(ending));  // one page: it and the status in one write
    return this;
  }
  // The handler's write goes out once it returns: the next page is built
  // meanwhile, elsewhere.
  workers_->Post([this] { FillAhead(); });
  return this;
}

void TaskRunPageStream::FillAhead() {
  for (;;) {
    int index = 0;
    {
      absl::MutexLock lock(&mutex_);
      index = writing_ == 0 ? 1 : 0;
    }
    const absl::Status filled = Fill(pages_[index]);
    Ending ending;
    {
      absl::MutexLock lock(&mutex_);
      filling_ = false;
      if (cancelled_) {
        if (writing_ < 0) ending = FinishLocked(grpc::Status::CANCELLED);
      } else if (!filled.ok()) {
        // E.g. retention forgot the execution between two pages.
        if (writing_ < 0) {
          ending = FinishLocked(ToGrpcStatus(filled));
        } else {
          failed_ = ToGrpcStatus(filled);
        }
      } else if (writing_ >= 0) {
        ready_ = index;  // OnWriteDone writes it
      } else {
        ending = WriteLocked(index);
        if (!ending.end) {
          filling_ = true;
          continue;
        }
      }
    }
    End(std::move(ending));
    return;
  }
}

void TaskRunPageStream::OnWriteDone(bool ok) {
  Ending ending;
  bool fill = false;
  {
    absl::MutexLock lock(&mutex_);
    writing_ = -1;
    if (!ok) cancelled_ = true;  // the client is gone, or the call was cancelled
    if (filling_) return;        // the page being built is written, or the call ended, then
    if (cancelled_) {
      ending = FinishLocked(grpc::Status::CANCELLED);
    } else if (!failed_.ok()) {
      ending = FinishLocked(failed_);
    } else if (ready_ >= 0) {
      ending = WriteLocked(std::exchange(ready_, -1));
      fill = !ending.end;
      filling_ = fill;
    }
  }
  if (fill) {
    FillAhead();
  } else {
    End(std::move(ending));
  }
}

void TaskRunPageStream::OnCancel() {
  Ending ending;
  {
    absl::MutexLock lock(&mutex_);
    cancelled_ = true;
    // Otherwise the write in flight ends (not ok) or the page being built
    // is done, and that ends the call.
    if (!filling_ && writing_ < 0) ending = FinishLocked(grpc::Status::CANCELLED);
  }
  End(std::move(ending));
}

TaskRunPageStream::Ending TaskRunPageStream::WriteLocked(int index) {
  writing_ = index;
  const v1::ListTaskRunsResponse* page = pages_[index].message;
  if (page->next_page_token().empty()) {
    finished_ = true;
    return Ending{true, grpc::Status::OK, page};
  }
  StartWrite(page);
  return Ending{};
}

TaskRunPageStream::Ending TaskRunPageStream::FinishLocked(grpc::Status status) {
  if (finished_) return Ending{};
  finished_ = true;
  return Ending{true, std::move(status), nullptr};
}

void TaskRunPageStream::End(Ending ending) {
  if (!ending.end) return;
  if (ending.last_page != nullptr) {
    StartWriteAndFinish(ending.last_page, grpc::WriteOptions(), grpc::Status::OK);
  } else {
    Finish(std::move(ending.status));
  }
}

}  // namespace gyre::orchestrator
