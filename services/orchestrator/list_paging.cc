#include "services/orchestrator/list_paging.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace gyre::orchestrator {

absl::StatusOr<size_t> PageSize(int32_t requested, int32_t fallback, int32_t max) {
  if (requested < 0 || requested > max) {
    return absl::InvalidArgumentError(absl::StrCat("page_size ", requested, " is out of range [1, ",
                                                   max, "] (0: ", fallback, ")"));
  }
  return static_cast<size_t>(requested == 0 ? fallback : requested);
}

absl::StatusOr<uint32_t> PagePosition(absl::string_view token, uint32_t first, uint32_t end) {
  if (token.empty()) return first;
  uint32_t position = 0;
  if (!absl::ConsumePrefix(&token, "p") || !absl::SimpleAtoi(token, &position) || position > end) {
    return absl::InvalidArgumentError("invalid page_token (pass the next_page_token of a page)");
  }
  return position;
}

}  // namespace gyre::orchestrator
