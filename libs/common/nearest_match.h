#ifndef GYRE_LIBS_COMMON_NEAREST_MATCH_H_
#define GYRE_LIBS_COMMON_NEAREST_MATCH_H_

#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

namespace gyre {

// Edit distance between two strings: insertions, deletions, substitutions
// and swaps of two adjacent characters each cost 1 (optimal string alignment).
size_t EditDistance(absl::string_view a, absl::string_view b);

// Words longer than this get no suggestion (a typo is in a name a person
// typed, and comparing costs the product of the two lengths).
inline constexpr size_t kMaxSuggestedWordBytes = 128;
// At most this many candidates (of a length close enough) are compared.
inline constexpr size_t kMaxComparedCandidates = 1000;

// Returns the candidate closest to `word` when it is plausibly a typo of it
// (distance at most a third of the word's length, minimum 1, maximum 3) or
// when the word is a prefix of it ("mem" -> "memory"), so errors can say
// `did you mean "extract"?`. Returns nullopt otherwise, and for a word
// longer than kMaxSuggestedWordBytes. Costs at most
// kMaxComparedCandidates * kMaxSuggestedWordBytes^2 steps plus one prefix
// check per candidate.
std::optional<std::string> NearestMatch(absl::string_view word,
                                        const std::vector<std::string>& candidates);

// Formats ` (did you mean "x"?)` or an empty string when nothing is close.
std::string DidYouMean(absl::string_view word, const std::vector<std::string>& candidates);

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_NEAREST_MATCH_H_
