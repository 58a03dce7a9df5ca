#include "services/orchestrator/dispatcher.h"
#include "tests/fixture.h"
