#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

Status writePrivateFileAtomically(const std::string& path, const std::string& text,
                                  std::string_view what, unsigned mode) {
  auto fail = [&](const char* verb, int err) {
    return absl::Status(
        absl::ErrnoToStatusCode(err),
        path + ": cannot " + verb + " " + std::string(what) + ": " + std::strerror(err));
  };
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return fail("write", errno);
  }
  ::fchmod(fd, mode);  // the umask may have taken bits away; add none it did not
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail("write", err);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail("write", err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail("write", err);
  }
  return absl::OkStatus();
}

}  // namespace serve
