#include "libs/server/huge_page_heap.h"

#include <malloc.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
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
  if (tunables.find(kTunable) != std::string::npos) {
    // Set, by us or the operator. Executed as /proc/self/exe, the process
    // would be called "exe" in ps, top and per-process metrics: give it
    // its program's name again (the kernel keeps 15 characters).
    if (argv[0] != nullptr) {
      prctl(PR_SET_NAME, std::filesystem::path(argv[0]).filename().string().substr(0, 15).c_str());
    }
    return;
  }
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

void RetainFreedHeapMemory() {
  const char* current = std::getenv("GLIBC_TUNABLES");
  const std::string tunables = current != nullptr ? current : "";
  // An operator's own setting of a tunable wins (mallopt would override it).
  auto set = [&tunables](const char* tunable, int option, int bytes) {
    if (tunables.find(tunable) == std::string::npos) mallopt(option, bytes);
  };
  // Freed memory stays in the heap up to this much...
  set("glibc.malloc.trim_threshold", M_TRIM_THRESHOLD, 256 << 20);
  // ...the heap grows in steps of at least this much...
  set("glibc.malloc.top_pad", M_TOP_PAD, 64 << 20);
  // ...and blocks up to this size come from the heap, not from a fresh
  // mapping per allocation that is unmapped again when freed.
  set("glibc.malloc.mmap_threshold", M_MMAP_THRESHOLD, 32 << 20);
}

}  // namespace gyre::server
