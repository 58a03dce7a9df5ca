#include "libs/common/token_buckets.h"

#include <algorithm>
#include <vector>

namespace gyre {

KeyedTokenBuckets::KeyedTokenBuckets(Options options)
    : per_second_(std::max(0.0, options.per_second)),
      burst_(std::max(1.0, options.burst > 0 ? options.burst : options.per_second)),
      max_keys_(std::max<size_t>(2, options.max_keys)) {}

void KeyedTokenBuckets::Refill(Bucket& bucket, absl::Time now) const {
  const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - bucket.updated));
  bucket.tokens = std::min(burst_, bucket.tokens + elapsed * per_second_);
  bucket.updated = now;
}

void KeyedTokenBuckets::MakeRoomLocked(absl::Time now) {
  std::vector<std::string> full;
  for (auto& [key, bucket] : buckets_) {
    Refill(bucket, now);
    if (bucket.tokens >= burst_) full.push_back(key);
  }
  for (const std::string& key : full) buckets_.erase(key);
  if (buckets_.size() > max_keys_ / 2) buckets_.clear();
}

size_t KeyedTokenBuckets::tracked_keys() {
  absl::MutexLock lock(&mutex_);
  return buckets_.size();
}

absl::Duration KeyedTokenBuckets::Take(absl::string_view key, absl::Time now) {
  if (!enabled()) return absl::ZeroDuration();
  absl::MutexLock lock(&mutex_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) MakeRoomLocked(now);
    it = buckets_.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  Bucket& bucket = it->second;
  Refill(bucket, now);
  if (bucket.tokens < 1) return absl::Seconds((1 - bucket.tokens) / per_second_);
  bucket.tokens -= 1;
  return absl::ZeroDuration();
}

}  // namespace gyre
