// A library header.
#pragma once
