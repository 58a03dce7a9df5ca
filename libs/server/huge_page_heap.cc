#include "libs/server/huge_page_heap.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace gyre::server {

namespace {

constexpr char kTunable[] = "glibc.malloc.hugetlb";

bool TransparentHugePagesAvailable() {
  std::ifstream mode("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  // "always [madvise] never": glibc's madvise works unless "never" is chosen.
  return std::getline(mode, line) && line.find("[never]") == std::string::npos;
}

}  // namespace

void ReexecWithHugePageHeap(char** argv) {
  const char* current = std::getenv("GLIBC_TUNABLES");
  std::string tunables = current != nullptr ? current : "";
  if (tunables.find(kTunable) != std::string::npos) return;  // set, by us or the operator
  if (!TransparentHugePagesAvailable()) return;
  if (!tunables.empty()) tunables += ':';
  tunables += std::string(kTunable) + "=1";
  if (setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Only reached when exec failed: run on with the default heap.
  if (current != nullptr) {
    setenv("GLIBC_TUNABLES", current, 1);
  } else {
    unsetenv("GLIBC_TUNABLES");
  }
}

}  // namespace gyre::server
