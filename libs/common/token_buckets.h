#ifndef GYRE_LIBS_COMMON_TOKEN_BUCKETS_H_
#define GYRE_LIBS_COMMON_TOKEN_BUCKETS_H_

#include <cstddef>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace gyre {

// One token bucket per key (a principal, a client address): refills at
// `per_second` up to `burst` tokens; a new key starts full. The rate limits
// at the gateway (requests per principal) and at the orchestrator
// (executions started per client) are both this.
//
// Memory is bounded by `max_keys` however many keys call: past it, buckets
// that are full again are dropped (their keys lose nothing); if more than
// half are still busy every bucket is dropped (each key gets a new burst) —
// a caller with that many keys is not held back by a per-key limit anyway,
// and the sweep then runs at most once per max_keys / 2 new keys.
//
// Thread-safe; Take holds a mutex of its own for a few map operations.
class KeyedTokenBuckets {
 public:
  struct Options {
    double per_second = 0;  // 0: unlimited (Take always answers zero)
    double burst = 0;       // 0: one second's worth; at least 1
    size_t max_keys = 100'000;
  };

  explicit KeyedTokenBuckets(Options options);

  bool enabled() const { return per_second_ > 0; }
  double per_second() const { return per_second_; }
  double burst() const { return burst_; }
  // Keys with a bucket now (for tests and metrics).
  size_t tracked_keys() ABSL_LOCKS_EXCLUDED(mutex_);

  // Takes one token from `key`'s bucket at `now`: zero when there was one,
  // else how long until there is (nothing is taken then).
  absl::Duration Take(absl::string_view key, absl::Time now);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };
  void Refill(Bucket& bucket, absl::Time now) const;
  void MakeRoomLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const double per_second_;
  const double burst_;
  const size_t max_keys_;
  absl::Mutex mutex_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_TOKEN_BUCKETS_H_
