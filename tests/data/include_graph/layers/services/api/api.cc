#include "services/api/api.h"
#include "services/store/store.h"
