// The replica's half of the Python arena: first fit, 64-byte blocks, coalescing on release.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "replica/runtime/python/arena.h"

namespace serve::python {
namespace {

std::unique_ptr<Arena> arenaOf(std::size_t size) {
  StatusOr<std::unique_ptr<Arena>> arena = Arena::create(size);
  REQUIRE(arena.ok());
  return *std::move(arena);
}

TEST_CASE("arena: blocks are 64-byte aligned, first fit, and only in the replica's half") {
  auto arena = arenaOf(1 << 16);  // 64 KiB: the replica owns [0, 32 KiB)
  CHECK(arena->size() == 1 << 16);
  CHECK(arena->half() == 1 << 15);
  CHECK(arena->allocate(1) == std::optional<std::size_t>(0));
  CHECK(arena->allocate(65) == std::optional<std::size_t>(64));
  CHECK(arena->allocate(64) == std::optional<std::size_t>(192));
  CHECK(arena->bytesInUse() == 256);
  CHECK(arena->allocate((1 << 15) - 256) == std::optional<std::size_t>(256));
  CHECK_FALSE(arena->allocate(1).has_value());  // full: the caller sends inline
}

TEST_CASE("arena: released blocks coalesce with both neighbours and are reused") {
  auto arena = arenaOf(1 << 16);
  const std::size_t a = *arena->allocate(1000);  // 1024 bytes
  const std::size_t b = *arena->allocate(1000);
  const std::size_t c = *arena->allocate(1000);
  CHECK(arena->bytesInUse() == 3 * 1024);
  arena->release(a);
  arena->release(c);
  arena->release(b);  // joins a's and c's blocks and the free tail into one
  CHECK(arena->bytesInUse() == 0);
  CHECK(arena->allocate(1 << 15) == std::optional<std::size_t>(0));
  arena->release(12345);  // not a block: ignored
  CHECK(arena->bytesInUse() == 1 << 15);
}

TEST_CASE("arena: views are bounds-checked and the memory is shared through the fd") {
  auto arena = arenaOf(1 << 16);
  StatusOr<std::span<std::byte>> view = arena->view(100, 5);
  REQUIRE(view.ok());
  std::memcpy(view->data(), "hello", 5);
  char back[5];
  CHECK(::pread(arena->fd(), back, 5, 100) == 5);
  CHECK(std::string(back, 5) == "hello");
  CHECK(arena->view((1 << 16) - 4, 4).ok());
  CHECK(arena->view((1 << 16) - 4, 5).status().message() ==
        "buffer [65532, +5) is outside the arena of 65536 bytes");
  CHECK_FALSE(arena->view(~std::uint64_t{0}, 2).ok());
}

}  // namespace
}  // namespace serve::python
