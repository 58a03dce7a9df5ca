// LD_PRELOAD shim for tests: fdatasync(2) fails with EIO while the file
// named by $GYRE_TEST_FAIL_FDATASYNC_WHEN exists, as a disk whose write-back
// failed reports it. Lets a test make a real process's fsync fail at a
// moment it chooses, without a faulty device.
#include <dlfcn.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

extern "C" int fdatasync(int fd) {
  const char* trigger = std::getenv("GYRE_TEST_FAIL_FDATASYNC_WHEN");
  struct stat info;
  if (trigger != nullptr && stat(trigger, &info) == 0) {
    errno = EIO;
    return -1;
  }
  using Fdatasync = int (*)(int);
  static const Fdatasync real = reinterpret_cast<Fdatasync>(dlsym(RTLD_NEXT, "fdatasync"));
  return real(fd);
}
