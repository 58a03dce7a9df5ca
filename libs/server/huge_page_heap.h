#ifndef GYRE_LIBS_SERVER_HUGE_PAGE_HEAP_H_
#define GYRE_LIBS_SERVER_HUGE_PAGE_HEAP_H_

// How the orchestrator (and gyre dev) set up their malloc heap at start:
// huge pages, and freed memory kept for reuse. Both are about page faults,
// which dominate large restarts and submissions on virtual machines.
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

// Keeps memory the process frees for its next allocations instead of
// handing it back to the kernel at once: glibc's defaults trim the heap and
// unmap large blocks as soon as they are freed, so the next submission's
// buffers and messages fault in fresh pages again. On this VM that made a
// 10,000-task submission spend ~20 ms in page faults. Up to 256 MiB freed
// stays with the process; blocks below 32 MiB come from the heap. A
// setting the operator made in GLIBC_TUNABLES (glibc.malloc.trim_threshold,
// top_pad, mmap_threshold) is left as it is.
void RetainFreedHeapMemory();

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_HUGE_PAGE_HEAP_H_
