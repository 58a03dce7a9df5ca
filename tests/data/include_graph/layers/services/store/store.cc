#include "cmd/tool/main.h"
