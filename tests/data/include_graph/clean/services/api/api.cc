#include "services/api/api.h"
#include "services/other/other_client.h"  // public client: may cross
