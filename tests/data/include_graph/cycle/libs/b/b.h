// b.h does not include a.cc, but a.h and a.cc are one node.
#pragma once
#include "libs/a/a.h"
