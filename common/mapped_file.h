#pragma once

// A file mapped read-only into memory, for model files that may be larger than what a process
// should copy: pages are read from the file as they are touched, so opening a large file costs
// address space, not memory.
#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace serve {

class MappedFile {
 public:
  // Maps `path` (MAP_PRIVATE, PROT_READ). `what` names the file in errors, which name the path:
  //   "<path>: cannot open <what>: <strerror>"             (missing, unreadable)
  //   "<path>: cannot read <what>: Is a directory"
  //   "<path>: <what> is a FIFO, not a regular file"       (and devices, sockets)
  //   "<path>: cannot map the <what> (N bytes): <strerror>" (ENOMEM under an address-space limit)
  // An empty file maps to no bytes (mmap refuses length 0, so nothing is mapped).
  static StatusOr<MappedFile> open(const std::string& path, std::string_view what);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  // Valid while this object lives; the address does not change when it is moved.
  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace serve
