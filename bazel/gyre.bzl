"""Compiler options shared by every Gyre target (mirrors the CMake flags)."""

GYRE_COPTS = [
    "-std=c++20",
    "-Wall",
    "-Wextra",
    "-Werror",
]
