#include "replica/runtime/python/arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace serve::python {
namespace {

std::size_t roundUp(std::size_t value, std::size_t to) { return (value + to - 1) / to * to; }

}  // namespace

StatusOr<std::unique_ptr<Arena>> Arena::create(std::size_t size) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  size = std::max(roundUp(size, 2 * page), 2 * page);
  const int fd = ::memfd_create("serve-python-arena", MFD_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("memfd_create: ", std::strerror(errno)));
  }
  UniqueFd owned(fd);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return absl::InternalError(
        absl::StrCat("sizing the Python arena to ", size, " bytes: ", std::strerror(errno)));
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mapping the Python arena: ", std::strerror(errno)));
  }
  return std::unique_ptr<Arena>(new Arena(owned.release(), static_cast<std::byte*>(base), size));
}

Arena::Arena(int fd, std::byte* base, std::size_t size) : fd_(fd), base_(base), size_(size) {
  free_[0] = size / 2;
}

Arena::~Arena() { ::munmap(base_, size_); }

std::optional<std::size_t> Arena::allocate(std::size_t len) {
  len = roundUp(std::max<std::size_t>(len, 1), kAlignment);
  std::lock_guard lock(mu_);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < len) {
      continue;
    }
    const std::size_t offset = it->first;
    const std::size_t rest = it->second - len;
    free_.erase(it);
    if (rest > 0) {
      free_[offset + len] = rest;
    }
    used_[offset] = len;
    return offset;
  }
  return std::nullopt;
}

void Arena::release(std::size_t offset) {
  std::lock_guard lock(mu_);
  auto used = used_.find(offset);
  if (used == used_.end()) {
    return;
  }
  std::size_t len = used->second;
  used_.erase(used);
  auto next = free_.lower_bound(offset);
  if (next != free_.end() && offset + len == next->first) {
    len += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      prev->second += len;
      return;
    }
  }
  free_[offset] = len;
}

StatusOr<std::span<std::byte>> Arena::view(std::uint64_t offset, std::uint64_t len) {
  if (offset > size_ || len > size_ - offset) {
    return absl::InternalError(absl::StrCat("buffer [", offset, ", +", len,
                                            ") is outside the arena of ", size_, " bytes"));
  }
  return std::span<std::byte>(base_ + offset, len);
}

std::size_t Arena::bytesInUse() const {
  std::lock_guard lock(mu_);
  std::size_t total = 0;
  for (const auto& [offset, len] : used_) {
    total += len;
  }
  return total;
}

}  // namespace serve::python
