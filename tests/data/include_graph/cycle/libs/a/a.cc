#include "libs/a/a.h"
#include "libs/b/b.h"
