#ifndef GYRE_LIBS_TESTING_LOAD_AVERAGE_H_
#define GYRE_LIBS_TESTING_LOAD_AVERAGE_H_

#include <cstdio>

namespace gyre::testing {

// The 1-minute load average (/proc/loadavg), or -1 where there is none:
// benchmarks print it beside their figures, since the machine may be shared.
inline double LoadAverage() {
  std::FILE* file = std::fopen("/proc/loadavg", "r");
  if (file == nullptr) return -1;
  double load = -1;
  if (std::fscanf(file, "%lf", &load) != 1) load = -1;
  std::fclose(file);
  return load;
}

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_LOAD_AVERAGE_H_
