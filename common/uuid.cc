#include "common/uuid.h"

#include <uuid/uuid.h>

#include <cstdint>
#include <random>

namespace serve {

// Request ids need uniqueness, not secrecy: a per-thread generator seeded once from libuuid's
// random source avoids a getrandom() system call per request.
std::string uuidV4() {
  thread_local std::mt19937_64 rng = [] {
    uuid_t seed;
    uuid_generate_random(seed);
    std::seed_seq seq(seed, seed + sizeof(seed));
    return std::mt19937_64(seq);
  }();
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  uuid_t id;
  for (int i = 0; i < 8; ++i) {
    id[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
    id[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
  }
  char text[37];
  uuid_unparse_lower(id, text);
  return text;
}

}  // namespace serve
