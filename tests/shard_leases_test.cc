// Several orchestrators on one PostgreSQL (issue 21, docs/architecture.md
// "Shards, leases and fencing"): ShardLeaseManager spreads the 256 shards
// evenly over the live members with at most one holder per shard, takes a
// stalled member's shards over once its leases lapse, hands shards over when
// one joins; PostgresShardStore's appends are fenced by the lease's token, so
// a stalled member (its thread paused, or its process SIGSTOPped) writes
// nothing once continued, and a shard's records written by two owners in
// turn load back in order. Members' heartbeats carry their backlog, which
// the others add up until they stop heartbeating. A real PostgreSQL 15 per
// test process.
#include <signal.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/postgres_server.h"
#include "services/orchestrator/cluster_backlog.h"
#include "services/orchestrator/postgres_shard_store.h"
#include "services/orchestrator/shard_lease_manager.h"
#include "tests/shard_test_records.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;
using ::gyre::testing::TaskLeasedIn;
using ::testing::HasSubstr;

// Short leases keep the tests to seconds; generous waits keep them from
// depending on the machine's speed (nothing here asserts a duration).
constexpr absl::Duration kTtl = absl::Milliseconds(1500);
constexpr absl::Duration kPatience = absl::Seconds(60);

gyre::testing::PostgresServer& Server() { return gyre::testing::PostgresServer::Shared(); }

// A fresh, migrated database's DSN.
std::string FreshDatabase() {
  absl::StatusOr<std::string> name = Server().CreateDatabase();
  EXPECT_TRUE(name.ok()) << name.status();
  PostgresStoreOptions options;
  options.dsn = Server().SocketDsn(*name);
  EXPECT_TRUE(MigratePostgresSchema(options).ok());
  return options.dsn;
}

// One member: a manager whose `releasing` releases at once (an engine with
// nothing to flush), counting what it was told.
class Member {
 public:
  // `backlog`: what its heartbeats publish and where the others' go.
  Member(const std::string& dsn, const std::string& id, absl::Duration ttl = kTtl,
         ClusterBacklog* backlog = nullptr) {
    ShardLeaseOptions options;
    options.store.dsn = dsn;
    options.orchestrator_id = id;
    options.address = absl::StrCat(id, ":7070");
    options.ttl = ttl;
    options.backlog = backlog;
    ShardLeaseCallbacks callbacks;
    callbacks.acquired = [this](uint32_t, int64_t) { Count(&acquired_); };
    callbacks.releasing = [this](uint32_t shard) {
      Count(&releasing_);
      if (release_on_request_) manager_->Release(shard);
    };
    callbacks.lost = [this](uint32_t) { Count(&lost_); };
    absl::StatusOr<std::unique_ptr<ShardLeaseManager>> started =
        ShardLeaseManager::Start(options, callbacks);
    EXPECT_TRUE(started.ok()) << started.status();
    if (started.ok()) manager_ = *std::move(started);
  }
  ShardLeaseManager& manager() { return *manager_; }
  int acquired() { return Read(&acquired_); }
  int releasing() { return Read(&releasing_); }
  int lost() { return Read(&lost_); }

 private:
  void Count(int* counter) {
    absl::MutexLock lock(&mutex_);
    ++*counter;
  }
  int Read(int* counter) {
    absl::MutexLock lock(&mutex_);
    return *counter;
  }
  const bool release_on_request_ = true;
  absl::Mutex mutex_;
  int acquired_ = 0;
  int releasing_ = 0;
  int lost_ = 0;
  std::unique_ptr<ShardLeaseManager> manager_;  // last: stopped first
};

// Fails the test if one shard is held by two members at once: X's lease on
// s, seen before and after Y's snapshot with the same token, overlaps Y's.
void ExpectNoShardHeldTwice(const std::vector<ShardLeaseManager*>& managers) {
  for (size_t x = 0; x < managers.size(); ++x) {
    for (size_t y = 0; y < managers.size(); ++y) {
      if (x == y) continue;
      const std::vector<ShardLease> before = managers[x]->owned();
      const std::vector<ShardLease> other = managers[y]->owned();
      const std::vector<ShardLease> after = managers[x]->owned();
      std::set<uint32_t> theirs;
      for (const ShardLease& lease : other) theirs.insert(lease.shard);
      std::set<std::pair<uint32_t, int64_t>> kept;
      for (const ShardLease& lease : before) kept.emplace(lease.shard, lease.token);
      for (const ShardLease& lease : after) {
        if (kept.contains({lease.shard, lease.token})) {
          EXPECT_FALSE(theirs.contains(lease.shard))
              << "shard " << lease.shard << " held by members " << x << " and " << y;
        }
      }
    }
  }
}

// Waits (checking for double holders meanwhile) until `counts` holds.
template <typename Predicate>
bool WaitUntil(const std::vector<ShardLeaseManager*>& managers, Predicate done) {
  const absl::Time give_up = absl::Now() + kPatience;
  while (absl::Now() < give_up) {
    ExpectNoShardHeldTwice(managers);
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

std::vector<size_t> Sizes(const std::vector<ShardLeaseManager*>& managers) {
  std::vector<size_t> sizes;
  for (ShardLeaseManager* manager : managers) sizes.push_back(manager->owned().size());
  return sizes;
}

bool Even(const std::vector<size_t>& sizes, size_t total) {
  size_t sum = 0;
  for (size_t size : sizes) sum += size;
  if (sum != total) return false;
  const size_t floor = total / sizes.size();
  for (size_t size : sizes) {
    if (size != floor && size != floor + 1) return false;
  }
  return true;
}

std::string Show(const std::vector<size_t>& sizes) { return absl::StrJoin(sizes, "/"); }

// What the engine's dispatcher does at each of its passes: this member's
// counts per queue into `backlog`.
void PublishOwn(ClusterBacklog& backlog, const std::vector<ClusterBacklog::OwnQueue>& own) {
  std::vector<QueueBacklog> cluster;
  std::vector<std::pair<std::string, QueueBacklog>> elsewhere;
  backlog.Publish(own, &cluster, &elsewhere);
}

std::string Show(const QueueBacklogs& backlogs) {
  std::map<std::string, QueueBacklog> sorted(backlogs.begin(), backlogs.end());
  std::string out;
  for (const auto& [queue, backlog] : sorted) {
    absl::StrAppend(&out, queue, "=", backlog.queued, "/", backlog.running, " ");
  }
  return out;
}

// What shard_leases says: shard -> (owner, token), for shards with an
// unexpired lease.
std::map<uint32_t, std::pair<std::string, int64_t>> LeaseTable(const std::string& dsn) {
  pqxx::connection connection(dsn);
  pqxx::read_transaction tx(connection);
  std::map<uint32_t, std::pair<std::string, int64_t>> out;
  for (const pqxx::row& row : tx.exec("SELECT shard, owner, token FROM shard_leases "
                                      "WHERE owner IS NOT NULL AND expires_at > now()")) {
    out[row[0].as<uint32_t>()] = {row[1].as<std::string>(), row[2].as<int64_t>()};
  }
  return out;
}

// The task ids stored in `shard`, in position order.
std::vector<std::string> TasksIn(const std::string& dsn, int shard) {
  pqxx::connection connection(dsn);
  pqxx::read_transaction tx(connection);
  std::vector<std::string> tasks;
  for (const pqxx::row& row : tx.exec_params(
           "SELECT record FROM shard_records WHERE shard = $1 ORDER BY position", shard)) {
    const pqxx::binarystring bytes(row[0]);
    v1::StateRecord record;
    EXPECT_TRUE(record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
    tasks.push_back(record.task_leased().task_id());
  }
  return tasks;
}

absl::Status AppendNow(StateStore& store, const v1::StateRecord& record) {
  absl::Notification done;
  absl::Status result;
  store.Append({&record, 1}, [&](absl::Status status) {
    result = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

std::unique_ptr<PostgresShardStore> OpenStore(const std::string& dsn, const std::string& id,
                                              std::vector<v1::StateRecord>* definitions = nullptr) {
  PostgresShardStoreOptions options;
  options.store.dsn = dsn;
  options.orchestrator_id = id;
  options.ttl = kTtl;
  std::unique_ptr<PostgresShardStore> store = PostgresShardStore::Create(options);
  const absl::Status loaded = store->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                                          [&](const v1::StateRecord& record) {
                                            if (definitions != nullptr)
                                              definitions->push_back(record);
                                            return absl::OkStatus();
                                          });
  EXPECT_TRUE(loaded.ok()) << loaded;
  return store;
}

TEST(ShardLeasesTest, TwoThenThreeMembersSplit256ShardsEvenlyWithOneOwnerEach) {
  const std::string dsn = FreshDatabase();
  // Longer leases: a round slowed past its deadline by a loaded machine
  // would report a lease lost, which this test says never happens.
  constexpr absl::Duration kSteadyTtl = absl::Seconds(4);
  Member a(dsn, "orch-a", kSteadyTtl);
  Member b(dsn, "orch-b", kSteadyTtl);
  std::vector<ShardLeaseManager*> managers = {&a.manager(), &b.manager()};
  ASSERT_TRUE(WaitUntil(managers, [&] { return Even(Sizes(managers), 256); }))
      << "never split evenly: " << Show(Sizes(managers));

  Member c(dsn, "orch-c", kSteadyTtl);
  managers.push_back(&c.manager());
  ASSERT_TRUE(WaitUntil(managers, [&] { return Even(Sizes(managers), 256); }))
      << "the third member never got its share: " << Show(Sizes(managers));
  EXPECT_GT(a.releasing() + b.releasing(), 0) << "the third member's shards came by hand-over";
  EXPECT_EQ(a.lost() + b.lost() + c.lost(), 0) << "a hand-over loses no lease";

  // PostgreSQL agrees: every shard has one live owner, the member that
  // says it holds it, with the same token.
  std::map<uint32_t, std::pair<std::string, int64_t>> expected;
  const std::vector<std::string> ids = {"orch-a", "orch-b", "orch-c"};
  for (size_t i = 0; i < managers.size(); ++i) {
    for (const ShardLease& lease : managers[i]->owned()) {
      expected[lease.shard] = {ids[i], lease.token};
    }
  }
  EXPECT_EQ(expected.size(), 256u);
  EXPECT_EQ(LeaseTable(dsn), expected);
}

// Seeded: which member stalls, and which of its shards it then writes to.
TEST(ShardLeasesTest, APausedMembersShardsAreTakenOverAndItsAppendsAreFencedOut) {
  for (const int seed : {1, 2, 3}) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937 random(seed);
    const std::string dsn = FreshDatabase();
    std::vector<std::unique_ptr<Member>> members;
    std::vector<ShardLeaseManager*> managers;
    for (int i = 0; i < 3; ++i) {
      members.push_back(std::make_unique<Member>(dsn, absl::StrCat("orch-", seed, "-", i)));
      managers.push_back(&members.back()->manager());
    }
    ASSERT_TRUE(WaitUntil(managers, [&] { return Even(Sizes(managers), 256); }))
        << Show(Sizes(managers));
    const size_t victim = random() % 3;
    const std::vector<ShardLease> held = managers[victim]->owned();
    ASSERT_FALSE(held.empty());
    const ShardLease lease = held[random() % held.size()];
    std::unique_ptr<PostgresShardStore> store =
        OpenStore(dsn, absl::StrCat("orch-", seed, "-", victim));
    ASSERT_TRUE(store
                    ->LoadShard(
                        lease.shard, lease.token,
                        [](v1::EngineSnapshot) { return absl::OkStatus(); },
                        [](const v1::StateRecord&) { return absl::OkStatus(); })
                    .ok());
    ASSERT_TRUE(AppendNow(*store, TaskLeasedIn(lease.shard, "before")).ok());

    managers[victim]->PauseForTesting(true);
    const absl::Time paused = absl::Now();
    std::vector<ShardLeaseManager*> others;
    for (size_t i = 0; i < managers.size(); ++i) {
      if (i != victim) others.push_back(managers[i]);
    }
    ASSERT_TRUE(WaitUntil(managers, [&] { return Even(Sizes(others), 256); }))
        << "the paused member's shards were not taken over: " << Show(Sizes(managers));
    std::printf("seed %d: shards taken over %.2f s after the pause (ttl %.1f s + renew %.1f s)\n",
                seed, absl::ToDoubleSeconds(absl::Now() - paused), absl::ToDoubleSeconds(kTtl),
                absl::ToDoubleSeconds(kTtl / 3));
    EXPECT_TRUE(managers[victim]->owned().empty())
        << "a member whose leases lapsed must not list them";

    // The stalled member's store still has the old token: fenced out.
    const absl::Status fenced = AppendNow(*store, TaskLeasedIn(lease.shard, "after"));
    EXPECT_EQ(fenced.code(), absl::StatusCode::kFailedPrecondition) << fenced;
    EXPECT_THAT(fenced.message(), HasSubstr(absl::StrCat("shard ", lease.shard)));
    EXPECT_THAT(fenced.message(), HasSubstr(absl::StrCat("fencing token ", lease.token)));
    EXPECT_EQ(TasksIn(dsn, static_cast<int>(lease.shard)), (std::vector<std::string>{"before"}))
        << "a fenced append must write nothing";
    EXPECT_FALSE(AppendNow(*store, TaskLeasedIn(lease.shard, "later")).ok())
        << "and every later append to that shard fails too";

    // Continued, it reports its leases lost and takes its share again.
    managers[victim]->PauseForTesting(false);
    ASSERT_TRUE(WaitUntil(managers, [&] { return Even(Sizes(managers), 256); }))
        << "the continued member never got its share back: " << Show(Sizes(managers));
    EXPECT_GE(members[victim]->lost(), static_cast<int>(held.size()));
  }
}

// Each member's heartbeat carries its backlog per queue, and each round
// reads the sums of the other live members' (desired workers with several
// orchestrators); a member that stops heartbeating drops out of them after
// the ttl, as it drops out of the membership.
TEST(ShardLeasesTest, EachMembersBacklogReachesTheOthersUntilItStopsHeartbeating) {
  const std::string dsn = FreshDatabase();
  ClusterBacklog a_backlog, b_backlog, c_backlog;
  PublishOwn(a_backlog, {{"gpu", {3, 1}}, {"cpu", {0, 0}}});
  PublishOwn(b_backlog, {{"gpu", {2, 0}}, {"cpu", {5, 0}}});
  PublishOwn(c_backlog, {{"gpu", {10, 0}}});
  Member a(dsn, "orch-a", kTtl, &a_backlog);
  Member b(dsn, "orch-b", kTtl, &b_backlog);
  Member c(dsn, "orch-c", kTtl, &c_backlog);
  std::vector<ShardLeaseManager*> managers = {&a.manager(), &b.manager(), &c.manager()};
  const QueueBacklogs a_sees = {{"gpu", {12, 0}}, {"cpu", {5, 0}}};
  const QueueBacklogs b_sees = {{"gpu", {13, 1}}};
  EXPECT_TRUE(WaitUntil(
      managers, [&] { return a_backlog.Others() == a_sees && b_backlog.Others() == b_sees; }))
      << "orch-a sees " << Show(a_backlog.Others()) << "; orch-b sees " << Show(b_backlog.Others());

  // The next heartbeats carry what the engine published since.
  PublishOwn(b_backlog, {{"gpu", {1, 1}}});
  EXPECT_TRUE(WaitUntil(managers,
                        [&] {
                          return a_backlog.Others() == QueueBacklogs{{"gpu", {11, 1}}};
                        }))
      << "orch-a sees " << Show(a_backlog.Others());

  // orch-c stops (its thread does nothing, as if its process were stopped):
  // gone from the others' sums once its heartbeat is older than the ttl.
  c.manager().PauseForTesting(true);
  EXPECT_TRUE(WaitUntil(managers,
                        [&] {
                          return a_backlog.Others() == QueueBacklogs{{"gpu", {1, 1}}} &&
                                 b_backlog.Others() == QueueBacklogs{{"gpu", {3, 1}}};
                        }))
      << "orch-a sees " << Show(a_backlog.Others()) << "; orch-b sees " << Show(b_backlog.Others());
  c.manager().PauseForTesting(false);
}

// Its own server: stopped and started again.
TEST(ShardLeasesTest, WhilePostgresIsDownLeasesAreReportedLostThenRetakenWhenItReturns) {
  absl::StatusOr<std::unique_ptr<gyre::testing::PostgresServer>> server =
      gyre::testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> database = (*server)->CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  const std::string dsn = (*server)->SocketDsn(*database);
  Member member(dsn, "orch-a");
  std::vector<ShardLeaseManager*> managers = {&member.manager()};
  ASSERT_TRUE(WaitUntil(managers, [&] { return member.manager().owned().size() == 256; }));

  ASSERT_TRUE((*server)->StopImmediately().ok());
  ASSERT_TRUE(WaitUntil(managers, [&] { return member.lost() == 256; }))
      << "no renewal can succeed: every lease must be reported lost; lost " << member.lost();
  EXPECT_TRUE(member.manager().owned().empty());

  ASSERT_TRUE((*server)->Restart().ok());
  ASSERT_TRUE(WaitUntil(managers, [&] { return member.manager().owned().size() == 256; }))
      << "the manager reconnects and takes the shards again";
  EXPECT_GE(member.acquired(), 512);
}

// Its own server, stopped: a member cut off from PostgreSQL for as long as a
// lease cannot tell who is still live, so it stops adding the others'
// backlog (its desired workers fall back to its own, never to a stale sum).
TEST(ShardLeasesTest, AMemberCutOffFromPostgresStopsCountingTheOthersBacklog) {
  absl::StatusOr<std::unique_ptr<gyre::testing::PostgresServer>> server =
      gyre::testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> database = (*server)->CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  const std::string dsn = (*server)->SocketDsn(*database);
  ClusterBacklog a_backlog, b_backlog;
  PublishOwn(a_backlog, {{"gpu", {3, 0}}});
  PublishOwn(b_backlog, {{"gpu", {4, 0}}});
  Member a(dsn, "orch-a", kTtl, &a_backlog);
  Member b(dsn, "orch-b", kTtl, &b_backlog);
  std::vector<ShardLeaseManager*> managers = {&a.manager(), &b.manager()};
  ASSERT_TRUE(WaitUntil(managers,
                        [&] {
                          return a_backlog.Others() == QueueBacklogs{{"gpu", {4, 0}}} &&
                                 b_backlog.Others() == QueueBacklogs{{"gpu", {3, 0}}};
                        }))
      << "orch-a sees " << Show(a_backlog.Others()) << "; orch-b sees " << Show(b_backlog.Others());

  ASSERT_TRUE((*server)->StopImmediately().ok());
  EXPECT_TRUE(
      WaitUntil(managers, [&] { return a_backlog.Others().empty() && b_backlog.Others().empty(); }))
      << "orch-a sees " << Show(a_backlog.Others()) << "; orch-b sees " << Show(b_backlog.Others());
}

std::string HolderPath() {
  const char* path = std::getenv("GYRE_SHARD_LEASE_HOLDER");
  return path != nullptr ? path : "tests/shard_lease_holder";
}

// The (shard, token) of the holder's rows (task "holder:<token>:<n>").
std::multiset<std::pair<int, int64_t>> HolderRows(const std::string& dsn) {
  pqxx::connection connection(dsn);
  pqxx::read_transaction tx(connection);
  std::multiset<std::pair<int, int64_t>> rows;
  for (const pqxx::row& row : tx.exec("SELECT shard, record FROM shard_records WHERE shard >= 0")) {
    const pqxx::binarystring bytes(row[1]);
    v1::StateRecord record;
    EXPECT_TRUE(record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
    const std::vector<std::string> parts = absl::StrSplit(record.task_leased().task_id(), ':');
    if (parts.size() == 3 && parts[0] == "holder") {
      rows.emplace(row[0].as<int>(), std::stoll(parts[1]));
    }
  }
  return rows;
}

TEST(ShardLeasesTest, ASigstoppedProcessLosesItsShardsAndOnceContinuedWritesNothing) {
  const std::string dsn = FreshDatabase();
  absl::StatusOr<std::unique_ptr<gyre::testing::ChildProcess>> holder =
      gyre::testing::ChildProcess::Start(
          {HolderPath(), dsn, "orch-holder", absl::StrCat(absl::ToInt64Milliseconds(kTtl))});
  ASSERT_TRUE(holder.ok()) << holder.status();
  auto appended = [](const std::string& line) {
    return absl::StrContains(line, "append ") && absl::StrContains(line, "status=OK");
  };
  ASSERT_TRUE((*holder)->WaitForLine(appended, kPatience).ok()) << (*holder)->Output();

  Member other(dsn, "orch-other");
  std::vector<ShardLeaseManager*> managers = {&other.manager()};
  ASSERT_TRUE(WaitUntil(managers, [&] { return other.manager().owned().size() == 128; }))
      << "the holder never handed half over: " << (*holder)->Output();

  (*holder)->Signal(SIGSTOP);
  const absl::Time stopped = absl::Now();
  // What the holder held when stopped: every token it was ever given.
  std::set<std::pair<int, int64_t>> stale;
  for (absl::string_view line : absl::StrSplit((*holder)->Output(), '\n')) {
    const std::vector<std::string> words = absl::StrSplit(line, ' ');
    if (words.size() == 3 && words[0] == "acquired") {
      stale.emplace(std::stoi(words[1]), std::stoll(words[2]));
    }
  }
  ASSERT_FALSE(stale.empty());
  ASSERT_TRUE(WaitUntil(managers, [&] { return other.manager().owned().size() == 256; }))
      << "the stopped process's shards were not taken over";
  std::printf("shards of the SIGSTOPped process taken over %.2f s after the stop (ttl %.1f s)\n",
              absl::ToDoubleSeconds(absl::Now() - stopped), absl::ToDoubleSeconds(kTtl));
  auto written_with_stale_tokens = [&] {
    size_t count = 0;
    for (const auto& row : HolderRows(dsn)) count += stale.contains(row) ? 1 : 0;
    return count;
  };
  const size_t before = written_with_stale_tokens();
  EXPECT_GT(before, 0u);

  (*holder)->Signal(SIGCONT);
  absl::StatusOr<std::string> refused = (*holder)->WaitForLine(
      [](const std::string& line) {
        return absl::StrContains(line, "append ") &&
               absl::StrContains(line, "status=FAILED_PRECONDITION");
      },
      kPatience);
  ASSERT_TRUE(refused.ok()) << (*holder)->Output();
  EXPECT_THAT(*refused, HasSubstr("fencing token"));
  // Let it go on a while (it keeps trying its stale tokens), then stop it.
  absl::SleepFor(kTtl);
  (*holder)->Signal(SIGKILL);
  ASSERT_TRUE((*holder)->WaitForExit(kPatience).has_value());
  EXPECT_EQ(written_with_stale_tokens(), before)
      << "a row was written with a token whose lease had been taken over:\n"
      << (*holder)->Output();
}

TEST(ShardLeasesTest, AShardsRecordsFromTwoOwnersAcrossAHandOverLoadInOrder) {
  const std::string dsn = FreshDatabase();
  constexpr uint32_t kShard = 255;  // handed over first (highest)
  auto no_snapshot = [](v1::EngineSnapshot) { return absl::OkStatus(); };
  auto ignore = [](const v1::StateRecord&) { return absl::OkStatus(); };

  Member a(dsn, "orch-a");
  std::vector<ShardLeaseManager*> managers = {&a.manager()};
  ASSERT_TRUE(WaitUntil(managers, [&] { return a.manager().owned().size() == 256; }));
  const int64_t token_a = a.manager().owned().back().token;
  std::unique_ptr<PostgresShardStore> store_a = OpenStore(dsn, "orch-a");
  // A second store of A's, never told of the hand-over: fencing stops it.
  std::unique_ptr<PostgresShardStore> unaware_a = OpenStore(dsn, "orch-a");
  ASSERT_TRUE(store_a->LoadShard(kShard, token_a, no_snapshot, ignore).ok());
  ASSERT_TRUE(unaware_a->LoadShard(kShard, token_a, no_snapshot, ignore).ok());
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(AppendNow(*store_a, TaskLeasedIn(kShard, absl::StrCat("a", i))).ok());
  }
  // A workflow definition: every orchestrator reads it, A's own excepted.
  v1::StateRecord definition;
  definition.mutable_workflow_deleted()->set_name("workflows/etl");
  ASSERT_TRUE(AppendNow(*store_a, definition).ok());

  // B joins; A's engine hands kShard over: durable, dropped, released.
  {
    Member b(dsn, "orch-b");
    managers.push_back(&b.manager());
    ASSERT_TRUE(WaitUntil(managers, [&] {
      for (const ShardLease& lease : b.manager().owned()) {
        if (lease.shard == kShard) return true;
      }
      return false;
    })) << Show(Sizes(managers));
    int64_t token_b = 0;
    for (const ShardLease& lease : b.manager().owned()) {
      if (lease.shard == kShard) token_b = lease.token;
    }
    EXPECT_GT(token_b, token_a) << "every acquisition moves the token on";
    // (A's Member released at once: its engine had nothing in flight.)
    ASSERT_TRUE(store_a->AwaitShardDurable(kShard, store_a->last_shard_position(kShard)).ok());
    store_a->ForgetShard(kShard);

    std::vector<v1::StateRecord> definitions_b;
    std::unique_ptr<PostgresShardStore> store_b = OpenStore(dsn, "orch-b", &definitions_b);
    ASSERT_EQ(definitions_b.size(), 1u);
    EXPECT_EQ(definitions_b[0].workflow_deleted().name(), "workflows/etl");
    std::vector<std::string> replayed;
    ASSERT_TRUE(store_b
                    ->LoadShard(kShard, token_b, no_snapshot,
                                [&](const v1::StateRecord& record) {
                                  replayed.push_back(record.task_leased().task_id());
                                  return absl::OkStatus();
                                })
                    .ok());
    EXPECT_EQ(replayed, (std::vector<std::string>{"a1", "a2", "a3", "a4", "a5"}));
    for (int i = 1; i <= 5; ++i) {
      ASSERT_TRUE(AppendNow(*store_b, TaskLeasedIn(kShard, absl::StrCat("b", i))).ok());
    }

    const absl::Status stale = AppendNow(*unaware_a, TaskLeasedIn(kShard, "stale"));
    EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition) << stale;
    EXPECT_THAT(stale.message(), HasSubstr(absl::StrCat("fencing token ", token_a)));
    const absl::Status dropped = AppendNow(*store_a, TaskLeasedIn(kShard, "dropped"));
    EXPECT_EQ(dropped.code(), absl::StatusCode::kFailedPrecondition) << dropped;

    const std::vector<std::string> in_order = {"a1", "a2", "a3", "a4", "a5",
                                               "b1", "b2", "b3", "b4", "b5"};
    EXPECT_EQ(TasksIn(dsn, kShard), in_order) << "no gap, no double, in append order";

    // A snapshot by the new owner covers b2 (position 7): a load then gets
    // it and the three records after it.
    v1::EngineSnapshot snapshot;
    snapshot.set_executions_started(7);
    ASSERT_EQ(store_b->last_shard_position(kShard), 10u);
    ASSERT_TRUE(store_b->WriteShardSnapshot(kShard, 7, snapshot).ok());
    std::unique_ptr<PostgresShardStore> reader = OpenStore(dsn, "orch-reader");
    int restored = 0;
    replayed.clear();
    ASSERT_TRUE(reader
                    ->LoadShard(
                        kShard, 0,
                        [&](v1::EngineSnapshot state) {
                          restored = static_cast<int>(state.executions_started());
                          return absl::OkStatus();
                        },
                        [&](const v1::StateRecord& record) {
                          replayed.push_back(record.task_leased().task_id());
                          return absl::OkStatus();
                        })
                    .ok());
    EXPECT_EQ(restored, 7);
    EXPECT_EQ(replayed, (std::vector<std::string>{"b3", "b4", "b5"}));

    // A's own definition is not handed back to A.
    std::vector<v1::StateRecord> caught_up;
    ASSERT_TRUE(store_a
                    ->CatchUpDefinitions([&](const v1::StateRecord& record) {
                      caught_up.push_back(record);
                      return absl::OkStatus();
                    })
                    .ok());
    EXPECT_TRUE(caught_up.empty());
    managers.pop_back();
  }
}

}  // namespace
}  // namespace gyre::orchestrator
