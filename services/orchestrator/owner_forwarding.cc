#include "services/orchestrator/owner_forwarding.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "libs/common/tenant.h"
#include "libs/logging/logger.h"
#include "libs/security/grpc_credentials.h"
#include "services/orchestrator/client_limits.h"
#include "services/orchestrator/execution_list_merge.h"
#include "services/orchestrator/list_paging.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// What a forwarded call carries on from the original: who the caller is (the
// gateway names the tenant and the request; a principal may be named by
// whoever limits clients by it).
constexpr const char* kCallerMetadata[] = {kTenantMetadata, "x-gyre-principal", "x-request-id"};

// A metadata value as the caller sent it, at most this long (the longest
// the orchestrator reads of any of them is 512 bytes).
constexpr size_t kMaxCopiedValueBytes = 512;

}  // namespace

OwnerForwarding::OwnerForwarding(const ShardDirectory* directory, Options options)
    : directory_(directory), options_(std::move(options)) {}

bool OwnerForwarding::IsForwarded(const grpc::ServerContextBase& context) {
  return context.client_metadata().count(kForwardedByMetadata) > 0;
}

absl::Status OwnerForwarding::Moving(uint32_t shard, absl::string_view why) {
  return absl::UnavailableError(
      absl::StrCat("shard ", shard, " is moving between orchestrators; retry (", why, ")"));
}

absl::StatusOr<OwnerForwarding::Target> OwnerForwarding::Route(
    const grpc::ServerContextBase& context, uint32_t shard) {
  if (IsForwarded(context)) {
    // The forwarder's directory named this orchestrator; this one's names
    // another, or none: ping-pong would be the next step.
    return Moving(shard, "a forwarded call reached an orchestrator that does not own it");
  }
  std::optional<OrchestratorMember> owner = directory_->OwnerOf(shard);
  if (!owner.has_value()) return Moving(shard, "no orchestrator holds its lease now");
  if (owner->id == directory_->self_id()) return Target{nullptr, owner->id};
  absl::StatusOr<std::shared_ptr<Stub>> stub = StubFor(*owner);
  if (!stub.ok()) return stub.status();
  return Target{*std::move(stub), owner->id};
}

absl::StatusOr<std::shared_ptr<OwnerForwarding::Stub>> OwnerForwarding::StubFor(
    const OrchestratorMember& member) {
  if (member.address.empty()) {
    return absl::UnavailableError(
        absl::StrCat("orchestrator ", member.id, " advertises no address to forward to"));
  }
  absl::MutexLock lock(&mutex_);
  auto it = stubs_.find(member.address);
  if (it != stubs_.end()) return it->second;
  // Answers come back whole, as they would to a client of the owner (a
  // large execution can pass gRPC's default 4 MB receive limit).
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      security::NewChannel(member.address, options_.tls, arguments);
  if (!channel.ok()) {
    return absl::UnavailableError(absl::StrCat("forward to orchestrator ", member.id, " at ",
                                               member.address, ": ", channel.status().message()));
  }
  std::shared_ptr<Stub> stub = v1::OrchestratorService::NewStub(*std::move(channel));
  stubs_.emplace(member.address, stub);
  return stub;
}

void OwnerForwarding::CopyMetadata(const grpc::ServerContextBase& context,
                                   grpc::ClientContext* client) const {
  const auto& metadata = context.client_metadata();
  for (const char* key : kCallerMetadata) {
    auto it = metadata.find(key);
    if (it == metadata.end()) continue;
    client->AddMetadata(
        key, std::string(it->second.data(), std::min(it->second.size(), kMaxCopiedValueBytes)));
  }
  // The owner limits clients (max_inflight_calls_per_client, start rates)
  // by principal, else by address: a caller named by neither would be this
  // orchestrator there, all of its forwarded callers as one. So it is named
  // by its address here.
  if (metadata.find("x-gyre-principal") == metadata.end()) {
    client->AddMetadata("x-gyre-principal", ClientLimits::ClientOf(context));
  }
  client->AddMetadata(kForwardedByMetadata, directory_->self_id());
}

std::unique_ptr<grpc::ClientContext> OwnerForwarding::UnaryContext(
    const grpc::ServerContextBase& context) const {
  // The caller's deadline and cancellation (the server call outlives the
  // forwarded one: the handler waits for it).
  std::unique_ptr<grpc::ClientContext> client = grpc::ClientContext::FromServerContext(context);
  CopyMetadata(context, client.get());
  return client;
}

absl::StatusOr<v1::ListExecutionsResponse> OwnerForwarding::ListExecutions(
    const grpc::ServerContextBase& context, const v1::ListExecutionsRequest& request,
    absl::FunctionRef<absl::StatusOr<v1::ListExecutionsResponse>(const v1::ListExecutionsRequest&)>
        local) {
  absl::StatusOr<size_t> page_size = PageSize(request.page_size(), 100, 1000);
  if (!page_size.ok()) return page_size.status();
  absl::StatusOr<MergedCursor> cursor = DecodeMergedToken(request.page_token());
  if (!cursor.ok()) return cursor.status();
  const bool first_page = request.page_token().empty();

  // The members now: one that left is dropped (its shards' executions are
  // listed by their new owners), one that joined is listed from its start.
  std::vector<OrchestratorMember> members = directory_->Members();
  bool self_listed = false;
  for (const OrchestratorMember& member : members) {
    self_listed = self_listed || member.id == directory_->self_id();
  }
  if (!self_listed) members.push_back({directory_->self_id(), ""});

  struct Ask {
    OrchestratorMember member;
    MemberCursor place;
    v1::ListExecutionsRequest request;
    std::unique_ptr<grpc::ClientContext> context;
    v1::ListExecutionsResponse response;
    grpc::Status status;
    bool answered = false;
  };
  std::vector<Ask> asks(members.size());
  std::vector<size_t> remote;
  size_t self_index = members.size();
  for (size_t i = 0; i < members.size(); ++i) {
    Ask& ask = asks[i];
    ask.member = members[i];
    if (auto it = cursor->find(members[i].id); it != cursor->end()) {
      ask.place = it->second;
    } else if (!first_page) {
      logging::Info("list executions: an orchestrator that joined is listed from its start",
                    {{"member", members[i].id}});
    }
    if (ask.place.done) continue;
    ask.request = request;
    ask.request.set_page_token(ask.place.token);
    ask.request.set_page_size(MemberPageSize(ask.place, *page_size));
    if (members[i].id == directory_->self_id()) {
      self_index = i;
    } else {
      remote.push_back(i);
    }
  }

  // The others', in parallel, while this one lists its own.
  absl::BlockingCounter pending(static_cast<int>(remote.size()));
  for (size_t i : remote) {
    Ask& ask = asks[i];
    absl::StatusOr<std::shared_ptr<Stub>> stub = StubFor(ask.member);
    if (!stub.ok()) {
      ask.status = ToGrpcStatus(stub.status());
      pending.DecrementCount();
      continue;
    }
    ask.context = UnaryContext(context);
    (*stub)->async()->ListExecutions(ask.context.get(), &ask.request, &ask.response,
                                     [&ask, &pending](grpc::Status status) {
                                       ask.status = std::move(status);
                                       ask.answered = ask.status.ok();
                                       pending.DecrementCount();
                                     });
  }
  // This one's listing is done (or it is asked nothing): an empty page.
  absl::StatusOr<v1::ListExecutionsResponse> own = v1::ListExecutionsResponse();
  if (self_index < asks.size()) own = local(asks[self_index].request);
  pending.Wait();
  // This orchestrator's own answer failing is the request's fault (a bad
  // filter or view): said as it is.
  if (!own.ok()) return own.status();
  v1::ListExecutionsResponse own_page = *std::move(own);

  std::vector<MemberPage> pages;
  pages.reserve(asks.size());
  for (size_t i = 0; i < asks.size(); ++i) {
    Ask& ask = asks[i];
    MemberPage page{ask.member.id, ask.place, std::nullopt};
    if (i == self_index) {
      page.response = std::exchange(own_page, v1::ListExecutionsResponse());
    } else if (ask.answered) {
      page.response = std::move(ask.response);
    } else if (!ask.place.done) {
      if (ask.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
        return absl::InvalidArgumentError(absl::StrCat(
            "list executions on orchestrator ", ask.member.id, ": ", ask.status.error_message()));
      }
      logging::Warn(
          "list executions: an orchestrator did not answer; the page lacks its executions",
          {{"member", ask.member.id},
           {"address", ask.member.address},
           {"error", ask.status.error_message()}});
    }
    pages.push_back(std::move(page));
  }
  return MergeMemberPages(std::move(pages), *page_size, request.view() == v1::EXECUTION_VIEW_FULL);
}

}  // namespace gyre::orchestrator
