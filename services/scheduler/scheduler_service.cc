#include "services/scheduler/scheduler_service.h"

#include <grpcpp/support/message_allocator.h>

#include "absl/time/clock.h"
#include "google/protobuf/arena.h"
#include "libs/common/status_mapping.h"
#include "libs/logging/logger.h"

namespace gyre::scheduler {

namespace v1 = ::gyre::v1;

namespace {

// One call's messages on one arena, freed at once when gRPC releases them.
class ArenaHolder final
    : public grpc::MessageHolder<v1::RankAndPlaceRequest, v1::RankAndPlaceResponse> {
 public:
  ArenaHolder() : arena_(Options()) {
    set_request(google::protobuf::Arena::CreateMessage<v1::RankAndPlaceRequest>(&arena_));
    set_response(google::protobuf::Arena::CreateMessage<v1::RankAndPlaceResponse>(&arena_));
  }
  void Release() override { delete this; }

 private:
  // A 10,000-task batch is ~1.2 MB on the wire and a few MB parsed: start
  // with 64 KiB blocks and let them grow to 1 MiB, so a batch takes a few
  // dozen blocks instead of the default's hundreds.
  static google::protobuf::ArenaOptions Options() {
    google::protobuf::ArenaOptions options;
    options.start_block_size = 64 << 10;
    options.max_block_size = 1 << 20;
    return options;
  }
  google::protobuf::Arena arena_;
};

}  // namespace

class SchedulerServiceImpl::ArenaAllocator final
    : public grpc::MessageAllocator<v1::RankAndPlaceRequest, v1::RankAndPlaceResponse> {
 public:
  grpc::MessageHolder<v1::RankAndPlaceRequest, v1::RankAndPlaceResponse>* AllocateMessages()
      override {
    return new ArenaHolder();
  }
};

SchedulerServiceImpl::SchedulerServiceImpl(RankingConfig config)
    : scheduler_(std::move(config)), allocator_(std::make_unique<ArenaAllocator>()) {
  SetMessageAllocatorFor_RankAndPlace(allocator_.get());
}

SchedulerServiceImpl::~SchedulerServiceImpl() = default;

grpc::ServerUnaryReactor* SchedulerServiceImpl::RankAndPlace(grpc::CallbackServerContext* context,
                                                             const v1::RankAndPlaceRequest* request,
                                                             v1::RankAndPlaceResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Timed only when the line is wanted: a batch's answer is on the
  // orchestrator's dispatch path.
  const bool debug = logging::Enabled(logging::Level::kDebug);
  const absl::Time started = debug ? absl::Now() : absl::InfinitePast();
  const absl::Status status = scheduler_.RankAndPlace(*request, response);
  if (debug) {
    logging::Debug("batch ranked and placed",
                   {{"tasks", request->tasks_size()},
                    {"agents", request->agents_size()},
                    {"placed", response->placements_size()},
                    {"unplaced", response->unplaced_size()},
                    {"took_us", absl::ToInt64Microseconds(absl::Now() - started)},
                    {"error", std::string(status.message())}});
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace gyre::scheduler
