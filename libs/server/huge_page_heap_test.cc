#include "libs/server/huge_page_heap.h"

#include <malloc.h>

#include <cstdlib>

#include "gtest/gtest.h"

namespace gyre::server {
namespace {

TEST(RetainFreedHeapMemoryTest, LargeBlocksComeFromTheHeapAndStayThereWhenFreed) {
  RetainFreedHeapMemory();
  constexpr size_t kBlock = size_t{8} << 20;
  const size_t mapped_before = mallinfo2().hblkhd;
  void* block = std::malloc(kBlock);
  ASSERT_NE(block, nullptr);
  // glibc's default would map a block this large on its own.
  EXPECT_EQ(mallinfo2().hblkhd, mapped_before);
  std::free(block);
  // ...and unmap it again; retained, the next allocations reuse it.
  EXPECT_GE(mallinfo2().fordblks, kBlock);
}

}  // namespace
}  // namespace gyre::server
