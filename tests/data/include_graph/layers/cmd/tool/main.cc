#include "services/api/api_detail.h"
#include "tests/fixture.h"
