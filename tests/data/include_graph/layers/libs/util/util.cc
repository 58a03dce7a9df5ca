#include "services/api/api.h"
