#include "a.h"  // resolved from the including directory
