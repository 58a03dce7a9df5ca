#pragma once
#include "libs/testing/fake.h"
