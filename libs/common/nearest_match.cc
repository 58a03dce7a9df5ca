#include "libs/common/nearest_match.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gyre {

size_t EditDistance(absl::string_view a, absl::string_view b) {
  // Optimal string alignment: insertions, deletions, substitutions and
  // swaps of adjacent characters ("rwa" -> "raw") each cost 1.
  const size_t rows = a.size() + 1;
  const size_t cols = b.size() + 1;
  std::vector<size_t> d(rows * cols);
  auto at = [&](size_t i, size_t j) -> size_t& { return d[i * cols + j]; };
  for (size_t i = 0; i < rows; ++i) at(i, 0) = i;
  for (size_t j = 0; j < cols; ++j) at(0, j) = j;
  for (size_t i = 1; i < rows; ++i) {
    for (size_t j = 1; j < cols; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(rows - 1, cols - 1);
}

std::optional<std::string> NearestMatch(absl::string_view word,
                                        const std::vector<std::string>& candidates) {
  // The words may be a client's: a suggestion costs at most
  // kMaxSuggestedWordBytes^2 steps per candidate, for kMaxComparedCandidates
  // candidates, whatever the client sent (it runs under the engine's lock).
  if (word.size() > kMaxSuggestedWordBytes) return std::nullopt;
  const size_t limit = std::clamp<size_t>(word.size() / 3, 1, 3);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  size_t compared = 0;
  for (const std::string& candidate : candidates) {
    // Lengths further apart than the limit are further apart by edits too.
    const size_t gap = candidate.size() > word.size() ? candidate.size() - word.size()
                                                      : word.size() - candidate.size();
    if (gap > limit) continue;
    if (++compared > kMaxComparedCandidates) break;
    const size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  if (best || word.size() < 2) return best;
  // A clipped word ("mem" for "memory") is far by edits but plain to a reader.
  for (const std::string& candidate : candidates) {
    if (candidate.size() > word.size() && absl::StartsWith(candidate, word)) {
      return candidate;
    }
  }
  return best;
}

std::string DidYouMean(absl::string_view word, const std::vector<std::string>& candidates) {
  std::optional<std::string> match = NearestMatch(word, candidates);
  if (!match) return "";
  return absl::StrCat(" (did you mean \"", *match, "\"?)");
}

}  // namespace gyre
