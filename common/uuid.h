#pragma once

#include <string>

namespace serve {

// A random (version 4) UUID in lower-case canonical form, from libuuid.
std::string uuidV4();

}  // namespace serve
