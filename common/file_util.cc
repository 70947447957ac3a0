#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace serve {

std::string fileTypeName(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFIFO:
      return "a FIFO";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFSOCK:
      return "a socket";
    case S_IFLNK:
      return "a symbolic link";
    default:
      return "not a regular file";
  }
}

namespace {

Status errnoFailure(const std::string& path, const char* verb, std::string_view what, int err) {
  return absl::Status(
      absl::ErrnoToStatusCode(err),
      absl::StrCat(path, ": cannot ", verb, " ", std::string(what), ": ", std::strerror(err)));
}

}  // namespace

StatusOr<RegularFile> openRegularFile(const std::string& path, std::string_view what) {
  // O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one; fstat below refuses
  // it before any read.
  RegularFile file{UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)), 0};
  if (file.fd.get() < 0) {
    return errnoFailure(path, "open", what, errno);
  }
  struct stat st {};
  if (::fstat(file.fd.get(), &st) != 0) {
    return errnoFailure(path, "read", what, errno);
  }
  if (S_ISDIR(st.st_mode)) {
    return errnoFailure(path, "read", what, EISDIR);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", std::string(what), " is ", fileTypeName(st.st_mode), ", not a regular file"));
  }
  file.size = static_cast<std::size_t>(st.st_size);
  return file;
}

StatusOr<std::string> readWholeFile(const std::string& path, std::string_view what,
                                    std::size_t limit) {
  auto tooLarge = [&](const std::string& size) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", std::string(what), " is ", size, " bytes; the limit is ", limit));
  };
  StatusOr<RegularFile> file = openRegularFile(path, what);
  if (!file.ok()) {
    return file.status();
  }
  if (file->size > limit) {
    return tooLarge(std::to_string(file->size));
  }
  // The size is a hint, not a promise: files under /proc say 0, and a file may grow while it is
  // read. The loop reads to the end, and one byte past the limit is enough to refuse.
  std::string bytes;
  bytes.reserve(file->size);
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(file->fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errnoFailure(path, "read", what, errno);
    }
    if (n == 0) {
      break;
    }
    if (static_cast<std::size_t>(n) > limit - bytes.size()) {
      return tooLarge(absl::StrCat("more than ", limit));
    }
    bytes.append(buffer, static_cast<std::size_t>(n));
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
