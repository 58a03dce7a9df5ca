#include "services/api/api.h"

#include "cmd/tool/main.h"  // no such file: outside the graph
