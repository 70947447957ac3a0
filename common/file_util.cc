#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"

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

Status ensurePrivateDirectory(const std::string& dir, std::string_view hint) {
  auto refuse = [&](const std::string& why) {
    return absl::FailedPreconditionError(
        absl::StrCat("state directory ", dir, " ", why, "; ", std::string(hint)));
  };
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return refuse(absl::StrCat("cannot be inspected: ", std::strerror(errno)));
    }
    const std::string parent = std::filesystem::path(dir).parent_path().string();
    std::error_code ec;
    if (!parent.empty()) {
      std::filesystem::create_directories(parent, ec);
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return refuse(absl::StrCat("cannot be created: ", std::strerror(errno)));
    }
    if (::lstat(dir.c_str(), &st) != 0) {
      return refuse(absl::StrCat("cannot be inspected: ", std::strerror(errno)));
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    return refuse("is not a directory (a link or a file is not accepted)");
  }
  if (st.st_uid != ::geteuid()) {
    return refuse(absl::StrCat("belongs to uid ", st.st_uid, ", not to this user (uid ",
                               ::geteuid(), "): whoever owns it could replace its sockets"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(absl::StrCat("may be written by group or others (mode ", mode,
                               "): they could replace its sockets; chmod go-w it"));
  }
  return absl::OkStatus();
}

}  // namespace serve
