#include "absl/strings/str_cat.h"  // not ours: outside the graph
#include "services/other/other_client.h"
