// A small orchestrator stand-in for shard_leases_test: one ShardLeaseManager
// and one PostgresShardStore, appending a record to one of its shards every
// 20 ms and printing what happens, so that the test can SIGSTOP and SIGCONT
// a real process. It keeps appending with the tokens it was given even
// after they are reported lost (an orchestrator that has not noticed yet):
// fencing alone must refuse those writes.
//
// Usage: shard_lease_holder DSN ORCHESTRATOR_ID TTL_MS
// Prints: "acquired <shard> <token>", "released <shard>", "lost <shard>",
// "append shard=<s> token=<t> seq=<n> status=<code> <message>".
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "services/orchestrator/postgres_shard_store.h"
#include "services/orchestrator/shard_lease_manager.h"
#include "tests/shard_test_records.h"

namespace {

using gyre::orchestrator::PostgresShardStore;
using gyre::orchestrator::ShardLeaseManager;

void Print(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

absl::Status Ignore(const auto&) { return absl::OkStatus(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DSN ORCHESTRATOR_ID TTL_MS\n", argv[0]);
    return 2;
  }
  const std::string id = argv[2];
  const absl::Duration ttl = absl::Milliseconds(std::atoi(argv[3]));
  gyre::orchestrator::PostgresShardStoreOptions store_options;
  store_options.store.dsn = argv[1];
  store_options.orchestrator_id = id;
  store_options.ttl = ttl;
  std::unique_ptr<PostgresShardStore> store = PostgresShardStore::Create(store_options);
  if (absl::Status status =
          store->Load(Ignore<gyre::v1::EngineSnapshot>, Ignore<gyre::v1::StateRecord>);
      !status.ok()) {
    Print(absl::StrCat("load failed: ", status.ToString()));
    return 1;
  }

  absl::Mutex mutex;
  std::deque<std::pair<uint32_t, int64_t>> acquired;
  std::deque<uint32_t> releasing;
  gyre::orchestrator::ShardLeaseOptions options;
  options.store = store_options.store;
  options.orchestrator_id = id;
  options.address = "holder";
  options.ttl = ttl;
  gyre::orchestrator::ShardLeaseCallbacks callbacks;
  callbacks.acquired = [&](uint32_t shard, int64_t token) {
    absl::MutexLock lock(&mutex);
    acquired.emplace_back(shard, token);
  };
  callbacks.releasing = [&](uint32_t shard) {
    absl::MutexLock lock(&mutex);
    releasing.push_back(shard);
  };
  callbacks.lost = [&](uint32_t shard) { Print(absl::StrCat("lost ", shard)); };
  absl::StatusOr<std::unique_ptr<ShardLeaseManager>> manager =
      ShardLeaseManager::Start(options, callbacks);
  if (!manager.ok()) {
    Print(absl::StrCat("start failed: ", manager.status().ToString()));
    return 1;
  }

  std::map<uint32_t, int64_t> held;  // never forgets a lost shard (see above)
  uint32_t cursor = 0;               // appends go round the shards held
  for (uint64_t seq = 1;; ++seq) {
    std::deque<std::pair<uint32_t, int64_t>> new_shards;
    std::deque<uint32_t> handed_over;
    {
      absl::MutexLock lock(&mutex);
      new_shards.swap(acquired);
      handed_over.swap(releasing);
    }
    for (const auto& [shard, token] : new_shards) {
      store->ForgetShard(shard);  // a stale one kept from before
      absl::Status loaded = store->LoadShard(shard, token, Ignore<gyre::v1::EngineSnapshot>,
                                             Ignore<gyre::v1::StateRecord>);
      if (!loaded.ok()) {
        Print(absl::StrCat("load shard failed: ", loaded.ToString()));
        continue;
      }
      held[shard] = token;
      Print(absl::StrCat("acquired ", shard, " ", token));
    }
    for (uint32_t shard : handed_over) {
      (void)store->AwaitShardDurable(shard, store->last_shard_position(shard));
      store->ForgetShard(shard);
      held.erase(shard);
      (*manager)->Release(shard);
      Print(absl::StrCat("released ", shard));
    }
    auto next = held.upper_bound(cursor);
    if (next == held.end()) next = held.begin();
    if (next != held.end()) {
      const auto [shard, token] = *next;
      cursor = shard;
      const gyre::v1::StateRecord record =
          gyre::testing::TaskLeasedIn(shard, absl::StrCat("holder:", token, ":", seq));
      absl::Notification done;
      absl::Status result;
      store->Append({&record, 1}, [&](absl::Status status) {
        result = std::move(status);
        done.Notify();
      });
      done.WaitForNotification();
      Print(absl::StrCat("append shard=", shard, " token=", token, " seq=", seq, " status=",
                         absl::StatusCodeToString(result.code()), " ", result.message()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}
