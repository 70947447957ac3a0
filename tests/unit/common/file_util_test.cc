// readWholeFile, writePrivateFileAtomically and ensurePrivateDirectory on a real temporary
// folder.
#include "common/file_util.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/scratch_dir.h"

namespace serve {
namespace {

using TempDir = serve::testing::ScratchDir;

unsigned modeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

constexpr const char* kHint = "set X elsewhere";

TEST_CASE("readWholeFile reads up to its limit and refuses a larger file before reading it") {
  TempDir dir;
  const std::string path = dir.path + "/config.yaml";
  std::ofstream(path) << std::string(100, 'x');
  CHECK(*readWholeFile(path, "serve config", 100) == std::string(100, 'x'));
  const Status over = readWholeFile(path, "serve config", 99).status();
  CHECK(over.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(over.message()) == path + ": serve config is 100 bytes; the limit is 99");

  // A sparse file takes no disk; were it read, the test would allocate its size.
  const std::string sparse = dir.path + "/sparse.yaml";
  const int fd = ::open(sparse.c_str(), O_WRONLY | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, off_t{1} << 40) == 0);  // 1 TiB
  ::close(fd);
  CHECK(std::string(readWholeFile(sparse, "serve config").status().message()) ==
        sparse + ": serve config is 1099511627776 bytes; the limit is 67108864");
  CHECK(kDefaultReadLimit == 64u << 20);
}

TEST_CASE("readWholeFile stops at the limit where the size is not known in advance") {
  // Files under /proc report size 0 and are read to their end: the limit still holds.
  const StatusOr<std::string> stat = readWholeFile("/proc/self/stat", "stat");
  REQUIRE(stat.ok());
  CHECK(stat->find(std::to_string(::getpid()) + " (") == 0);
  CHECK(std::string(readWholeFile("/proc/self/stat", "stat", 4).status().message()) ==
        "/proc/self/stat: stat is more than 4 bytes; the limit is 4");
}

TEST_CASE("readWholeFile refuses a directory, a FIFO and a missing file, naming the path") {
  TempDir dir;
  CHECK(std::string(readWholeFile(dir.path, "manager state").status().message()) ==
        dir.path + ": cannot read manager state: Is a directory");
  // Opening a FIFO nobody writes to would block a plain open(); this one must return at once.
  const std::string fifo = dir.path + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const Status st = readWholeFile(fifo, "control token").status();
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()) == fifo + ": control token is a FIFO, not a regular file");
  const Status missing = readWholeFile(dir.path + "/none", "HAProxy template").status();
  CHECK(missing.code() == absl::StatusCode::kNotFound);
  CHECK(std::string(missing.message()) ==
        dir.path + "/none: cannot open HAProxy template: No such file or directory");
  CHECK(std::string(readWholeFile("/dev/null", "config").status().message()) ==
        "/dev/null: config is a character device, not a regular file");
}

TEST_CASE("writePrivateFileAtomically writes the whole text with the mode, over an old file") {
  TempDir dir;
  const std::string path = dir.path + "/snapshot.yaml";
  std::ofstream(path) << "old and longer text";
  ::chmod(path.c_str(), 0644);
  REQUIRE(writePrivateFileAtomically(path, "new", "config snapshot").ok());
  CHECK(*readWholeFile(path, "x") == "new");
  CHECK(modeOf(path) == 0600);
  const Status missing =
      writePrivateFileAtomically(dir.path + "/no/such/dir/f", "x", "config snapshot");
  CHECK(std::string(missing.message()) ==
        dir.path + "/no/such/dir/f: cannot write config " + "snapshot: No such file or directory");
}

TEST_CASE("ensurePrivateDirectory creates a missing directory 0700, parents included") {
  TempDir dir;
  const std::string path = dir.path + "/a/b/state";
  REQUIRE(ensurePrivateDirectory(path, kHint).ok());
  CHECK(std::filesystem::is_directory(path));
  CHECK(modeOf(path) == 0700);
  CHECK(ensurePrivateDirectory(path, kHint).ok());  // and accepts it the next time
}

TEST_CASE("ensurePrivateDirectory refuses, and does not change, one others may write to") {
  TempDir dir;
  const std::string path = dir.path + "/shared";
  REQUIRE(::mkdir(path.c_str(), 0777) == 0);
  ::chmod(path.c_str(), 01777);  // like /tmp
  const Status st = ensurePrivateDirectory(path, kHint);
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(st.message()) ==
        "state directory " + path +
            " may be written by group or others (mode 1777): they could replace its sockets; "
            "chmod go-w it; set X elsewhere");
  CHECK(modeOf(path) == 01777);
  ::chmod(path.c_str(), 0750);
  CHECK(ensurePrivateDirectory(path, kHint).ok());  // group may read, not write
}

TEST_CASE("ensurePrivateDirectory refuses a file or a link where the directory should be") {
  TempDir dir;
  const std::string file = dir.path + "/file";
  std::ofstream(file) << "x";
  CHECK(std::string(ensurePrivateDirectory(file, kHint).message()) ==
        "state directory " + file +
            " is not a directory (a link or a file is not accepted); set X elsewhere");
  const std::string link = dir.path + "/link";
  REQUIRE(::symlink(dir.path.c_str(), link.c_str()) == 0);
  CHECK(std::string(ensurePrivateDirectory(link, kHint).message()) ==
        "state directory " + link +
            " is not a directory (a link or a file is not accepted); set X elsewhere");
}

TEST_CASE("ensurePrivateDirectory refuses one that belongs to another user") {
  if (::geteuid() != 0) {
    MESSAGE("not root: cannot give a directory to another user here; skipped");
    return;
  }
  TempDir dir;
  const std::string path = dir.path + "/theirs";
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);
  CHECK(std::string(ensurePrivateDirectory(path, kHint).message()) ==
        "state directory " + path +
            " belongs to uid 65534, not to this user (uid 0): whoever owns it could replace its "
            "sockets; set X elsewhere");
}

}  // namespace
}  // namespace serve
