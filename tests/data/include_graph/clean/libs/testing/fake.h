#pragma once
#include "libs/a/a.h"
