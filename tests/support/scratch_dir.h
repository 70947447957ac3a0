#pragma once

// A scratch directory under /tmp for the unit tests that read and write files, removed with
// everything in it when the test's object goes.
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace serve::testing {

struct ScratchDir {
  ScratchDir() {
    char name[] = "/tmp/serve-unit-XXXXXX";
    path = ::mkdtemp(name);
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::string path;
};

}  // namespace serve::testing
