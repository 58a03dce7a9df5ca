#ifndef GYRE_LIBS_SERVER_HUGE_PAGE_HEAP_H_
#define GYRE_LIBS_SERVER_HUGE_PAGE_HEAP_H_

namespace gyre::server {

// Backs the process's malloc heap with transparent huge pages, for
// processes whose state is millions of small objects (the orchestrator).
// Touching a fresh 4 KiB page costs a page fault, and on virtual machines
// faults are most of the time spent rebuilding a large state at restart;
// with 2 MiB pages there are 512 times fewer (measured: a restart with a
// million records went from 4.4 s to 2.7 s).
//
// glibc does this with its glibc.malloc.hugetlb=1 tunable (glibc >= 2.35),
// which it reads only at startup, so this re-executes the program once with
// the tunable added to GLIBC_TUNABLES (same pid, arguments, descriptors).
// Call it first thing in main. It returns (doing nothing) when
// GLIBC_TUNABLES already names glibc.malloc.hugetlb (an operator's explicit
// choice, e.g. =0 to opt out), when the kernel's THP mode is "never", or
// when the re-exec fails.
void ReexecWithHugePageHeap(char** argv);

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_HUGE_PAGE_HEAP_H_
