#pragma once

// An EnvLookup over a fixed map, so tests never read the real environment.
#include <map>
#include <optional>
#include <string>

#include "common/env_settings.h"

namespace serve::testing {

using Vars = std::map<std::string, std::string>;

inline EnvLookup envFrom(Vars vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

}  // namespace serve::testing
