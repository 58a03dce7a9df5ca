#include "services/api/api.h"

#include "libs/testing/fake.h"  // a test may use test support
