#include "tests/fixture.h"
#include "services/api/api_detail.h"
