#include "common/file_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace serve {

StatusOr<std::string> readWholeFile(const std::string& path, std::string_view what) {
  struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  auto fail = [&](const char* verb) {
    const int err = errno;
    return absl::Status(
        absl::ErrnoToStatusCode(err),
        path + ": cannot " + verb + " " + std::string(what) + ": " + std::strerror(err));
  };
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) {
    return fail("open");
  }
  std::string bytes;
  char buffer[64 * 1024];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    bytes.append(buffer, n);
  }
  if (std::ferror(file.get())) {
    return fail("read");
  }
  return bytes;
}

}  // namespace serve
