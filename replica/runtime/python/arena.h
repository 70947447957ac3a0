#pragma once

// The shared-memory arena between a replica and its Python worker (docs/python.md, "Buffers"):
// one memfd, mapped by both processes. The replica allocates request payloads in the first half;
// the worker allocates responses in the second half and frees them when told to.
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>

#include "common/status.h"
#include "common/unique_fd.h"

namespace serve::python {

class Arena {
 public:
  static constexpr std::size_t kAlignment = 64;

  // A memfd of `size` bytes (rounded up to the alignment, at least 2 pages), mapped read-write.
  static StatusOr<std::unique_ptr<Arena>> create(std::size_t size);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  int fd() const { return fd_.get(); }
  std::size_t size() const { return size_; }
  std::size_t half() const { return size_ / 2; }

  // A block of `len` bytes in the replica's half, or nullopt when none is free (the caller then
  // sends the payload inline). Thread-safe.
  std::optional<std::size_t> allocate(std::size_t len);
  void release(std::size_t offset);  // a block allocate() returned

  // The bytes [offset, offset + len); an error when they are not inside the arena.
  StatusOr<std::span<std::byte>> view(std::uint64_t offset, std::uint64_t len);

  std::size_t bytesInUse() const;

 private:
  Arena(int fd, std::byte* base, std::size_t size);

  UniqueFd fd_;
  std::byte* base_;
  std::size_t size_;
  mutable std::mutex mu_;
  std::map<std::size_t, std::size_t> free_;  // offset -> length, coalesced
  std::map<std::size_t, std::size_t> used_;  // offset -> length
};

}  // namespace serve::python
