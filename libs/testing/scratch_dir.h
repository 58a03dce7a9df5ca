#ifndef GYRE_LIBS_TESTING_SCRATCH_DIR_H_
#define GYRE_LIBS_TESTING_SCRATCH_DIR_H_

#include <string>

namespace gyre::testing {

// A fresh directory under /tmp ("/tmp/<prefix>_XXXXXX"), removed with
// everything in it when this goes out of scope, so tests that start real
// processes in parallel never share (or leave behind) a data directory.
// path() is empty when the directory could not be made.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_SCRATCH_DIR_H_
