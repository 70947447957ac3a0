#include "common/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace serve {

StatusOr<MappedFile> MappedFile::open(const std::string& path, std::string_view what) {
  StatusOr<RegularFile> opened = openRegularFile(path, what);
  if (!opened.ok()) {
    return opened.status();
  }
  MappedFile file;
  if (opened->size == 0) {
    return file;
  }
  const std::size_t size = opened->size;
  void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, opened->fd.get(), 0);
  if (data == MAP_FAILED) {
    const int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat(path, ": cannot map the ", std::string(what), " (", size,
                                     " bytes): ", std::strerror(err)));
  }
  // The mapping keeps the file open by itself; the descriptor is closed on return.
  file.data_ = data;
  file.size_ = size;
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) {
      ::munmap(data_, size_);
    }
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) {
    ::munmap(data_, size_);
  }
}

}  // namespace serve
