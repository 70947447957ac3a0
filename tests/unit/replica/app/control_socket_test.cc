// ControlSocket over a real unix socket in a temporary folder: one JSON line in, one out.
#include "replica/app/control_socket.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace serve {
namespace {

struct TempDir {
  TempDir() {
    char name[] = "/tmp/control-socket-test-XXXXXX";
    path = ::mkdtemp(name);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

// Connects, writes `request` as is, and reads until the socket closes.
std::string sendLine(const std::string& path, const std::string& request) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0);
  REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  std::string reply;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
    reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

TEST_CASE("ControlSocket: answers each request line with the handler's reply, then closes") {
  TempDir dir;
  const std::string path = dir.path + "/r.sock";
  std::atomic<int> calls{0};
  ControlSocket socket(path, [&](const nlohmann::json& request) {
    ++calls;
    return nlohmann::json{{"ok", true}, {"echo", request["op"]}};
  });
  REQUIRE(socket.start().ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0600);

  CHECK(sendLine(path, "{\"op\":\"health\"}\n") == "{\"echo\":\"health\",\"ok\":true}\n");
  CHECK(sendLine(path, "{\"op\":\"reconfigure\",\"user_config\":{\"a\":1}}\n") ==
        "{\"echo\":\"reconfigure\",\"ok\":true}\n");
  CHECK(calls == 2);
}

TEST_CASE("ControlSocket: a line that is not a JSON object with an op gets an error, no call") {
  TempDir dir;
  const std::string path = dir.path + "/r.sock";
  std::atomic<int> calls{0};
  ControlSocket socket(path, [&](const nlohmann::json&) {
    ++calls;
    return nlohmann::json{{"ok", true}};
  });
  REQUIRE(socket.start().ok());
  const std::string error =
      "{\"error\":\"expected one JSON object with a string \\\"op\\\" on one "
      "line\",\"ok\":false}\n";
  CHECK(sendLine(path, "not json\n") == error);
  CHECK(sendLine(path, "[1,2]\n") == error);
  CHECK(sendLine(path, "{\"op\":7}\n") == error);
  CHECK(calls == 0);
}

TEST_CASE("ControlSocket: replaces a stale socket, refuses any other file, removes its own") {
  TempDir dir;
  const std::string path = dir.path + "/r.sock";
  {
    ControlSocket first(path, [](const nlohmann::json&) { return nlohmann::json{{"ok", true}}; });
    REQUIRE(first.start().ok());
  }
  CHECK_FALSE(std::filesystem::exists(path));  // removed when it stopped

  // A socket file left by a killed replica: bound over.
  const int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  REQUIRE(::bind(stale, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0);
  ::close(stale);
  {
    ControlSocket second(path, [](const nlohmann::json&) { return nlohmann::json{{"ok", 1}}; });
    REQUIRE(second.start().ok());
    CHECK(sendLine(path, "{\"op\":\"health\"}\n") == "{\"ok\":1}\n");
  }

  const std::string regular = dir.path + "/data";
  std::ofstream(regular) << "keep me";
  ControlSocket third(regular, [](const nlohmann::json&) { return nlohmann::json{}; });
  const Status st = third.start();
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(st.message()) ==
        "control socket " + regular + ": exists and is not a socket; not replacing it");
  std::ifstream kept(regular);
  std::string content;
  std::getline(kept, content);
  CHECK(content == "keep me");
}

TEST_CASE("ControlSocket: a path too long for a unix socket is refused with the flag") {
  const std::string path = "/tmp/" + std::string(120, 'x');
  ControlSocket socket(path, [](const nlohmann::json&) { return nlohmann::json{}; });
  const Status st = socket.start();
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()) ==
        "--control-socket " + path + ": a unix socket path must have 1 to 107 bytes");
}

}  // namespace
}  // namespace serve
