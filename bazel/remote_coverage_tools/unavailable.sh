#!/bin/sh
echo "bazel coverage is not available offline; use the CMake build for coverage" >&2
exit 1
