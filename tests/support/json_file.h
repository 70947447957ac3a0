#pragma once

// Reads a JSON file the tests compare against (models/digits.json and the like). A missing or
// malformed file throws, which fails the test that needed it.
#include <fstream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"

namespace serve::testing {

inline nlohmann::json readJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

}  // namespace serve::testing
