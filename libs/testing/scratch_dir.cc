#include "libs/testing/scratch_dir.h"

#include <stdlib.h>

#include <filesystem>
#include <system_error>

namespace gyre::testing {

ScratchDir::ScratchDir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "_XXXXXX";
  if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  std::error_code ignored;  // a test must not fail in its cleanup
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace gyre::testing
