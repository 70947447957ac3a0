// HaproxyController, AdminSocketClient and MasterCli against real HAProxy processes on loopback,
// once per available version (tests/support/haproxy_binaries.h). Each test writes its own small
// config into a fresh temp dir; ports are found by binding port 0.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "haproxy-manager/haproxy/haproxy_process.h"
#include "haproxy-manager/haproxy/runtime_api.h"
#include "tests/support/haproxy_binaries.h"
#include "tests/support/http_client.h"

namespace serve::manager {
namespace {

using serve::testing::haproxyBinaries;
using serve::testing::HaproxyBinary;
using serve::testing::httpGet;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  socklen_t length = sizeof(address);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

// Dead, or a zombie that its (new) parent has not reaped yet.
bool processGone(int pid) {
  if (::kill(pid, 0) != 0) {
    return errno == ESRCH;
  }
  StatusOr<std::string> stat = readWholeFile("/proc/" + std::to_string(pid) + "/stat", "stat");
  if (!stat.ok()) {
    return true;
  }
  const size_t close = stat->rfind(')');
  return close != std::string::npos && (*stat)[close + 2] == 'Z';
}

// Live processes that have `arg` among their arguments.
std::vector<int> livePidsWithArg(const std::string& arg) {
  std::vector<int> pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    StatusOr<std::string> cmdline = readWholeFile(entry.path().string() + "/cmdline", "cmdline");
    if (!cmdline.ok()) {
      continue;
    }
    size_t start = 0;
    while (start < cmdline->size()) {
      const size_t end = cmdline->find('\0', start);
      if (cmdline->substr(start, end - start) == arg && !processGone(std::stoi(name))) {
        pids.push_back(std::stoi(name));
        break;
      }
      if (end == std::string::npos) {
        break;
      }
      start = end + 1;
    }
  }
  return pids;
}

bool eventually(const std::function<bool()>& condition, milliseconds timeout = milliseconds(5000)) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

// A TCP connection to HAProxy holding a request that is not finished yet, so the worker that
// accepted it stays alive (as an old worker) across a reload until the request completes.
class HeldRequest {
 public:
  explicit HeldRequest(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    sendText("GET /gen HTTP/1.1\r\nHost: test\r\n");
  }
  ~HeldRequest() { ::close(fd_); }

  // Ends the request and returns the whole response (HAProxy closes a soft-stopping worker's
  // connections after answering).
  std::string finish() {
    sendText("Connection: close\r\n\r\n");
    timeval timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::string response;
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::recv(fd_, buffer, sizeof(buffer), 0)) > 0) {
      response.append(buffer, static_cast<size_t>(n));
    }
    return response;
  }

 private:
  void sendText(const std::string& text) {
    REQUIRE(::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(text.size()));
  }
  int fd_ = -1;
};

// One HAProxy setup in its own temp dir: `fe` on http_port answers /gen itself with a body
// naming the config's generation, routes the prefixes in routes.map to their backends and
// answers 404 "no route" otherwise; `origin` on origin_port stands in for a replica.
class Fixture {
 public:
  explicit Fixture(HaproxyBinary binary) : binary_(std::move(binary)) {
    char dir_template[] = "/tmp/haproxy-ctl-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    dir = dir_template;
    config_path = dir + "/haproxy.cfg";
    admin_socket = dir + "/admin.sock";
    map_path = dir + "/routes.map";
    http_port = freePort();
    origin_port = freePort();
    std::ofstream(map_path).flush();
  }
  ~Fixture() {
    controller.reset();  // stops HAProxy before its files go
    std::error_code error;
    std::filesystem::remove_all(dir, error);
  }

  std::string config(const std::string& generation) const {
    return "global\n"
           "    stats socket " +
           admin_socket +
           " mode 600 level admin expose-fd listeners\n"
           "    hard-stop-after 10s\n"
           "\n"
           "defaults\n"
           "    mode http\n"
           "    timeout connect 1s\n"
           "    timeout client 10s\n"
           "    timeout server 10s\n"
           "\n"
           "frontend fe\n"
           "    bind 127.0.0.1:" +
           std::to_string(http_port) +
           "\n"
           "    http-request return status 200 content-type text/plain string \"" +
           generation +
           "\" if { path /gen }\n"
           "    http-request set-var(txn.backend) path,map_beg(" +
           map_path +
           ")\n"
           "    http-request return status 404 content-type text/plain string \"no route\" "
           "unless { var(txn.backend) -m found }\n"
           "    use_backend %[var(txn.backend)]\n"
           "\n"
           "frontend origin\n"
           "    bind 127.0.0.1:" +
           std::to_string(origin_port) +
           "\n"
           "    http-request return status 200 content-type text/plain string \"origin\"\n"
           "\n"
           "backend be_app\n"
           "    server-template slot 1-2 127.0.0.1:1 disabled check inter 100ms\n";
  }

  void writeConfig(const std::string& text) const {
    std::ofstream out(config_path, std::ios::trunc);
    out << text;
    REQUIRE(out.good());
  }

  // Number of lines, so that a line appended next is line lines()+1.
  int configLines() const {
    StatusOr<std::string> text = readWholeFile(config_path, "config");
    REQUIRE(text.ok());
    return static_cast<int>(std::count(text->begin(), text->end(), '\n'));
  }

  HaproxyController& create(double startup_timeout_s = 10) {
    HaproxyOptions options;
    options.binary = binary_.path;
    options.config_path = config_path;
    options.admin_socket_path = admin_socket;
    options.log_dir = dir + "/logs";
    options.startup_timeout_s = startup_timeout_s;
    auto noEnv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    StatusOr<std::unique_ptr<HaproxyController>> created =
        HaproxyController::create(std::move(options), noEnv);
    REQUIRE_MESSAGE(created.ok(), created.status().message());
    controller = std::move(*created);
    return *controller;
  }

  HaproxyController& started(const std::string& generation = "generation-1") {
    writeConfig(config(generation));
    HaproxyController& haproxy = create();
    Status status = haproxy.start();
    REQUIRE_MESSAGE(status.ok(), status.message());
    return haproxy;
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(http_port) + path;
  }

  std::string dir;
  std::string config_path;
  std::string admin_socket;
  std::string map_path;
  int http_port = 0;
  int origin_port = 0;
  std::unique_ptr<HaproxyController> controller;

 private:
  HaproxyBinary binary_;
};

ShowProc requireShowProc(HaproxyController& haproxy) {
  StatusOr<ShowProc> proc = haproxy.masterCli().showProc();
  REQUIRE_MESSAGE(proc.ok(), proc.status().message());
  return *proc;
}

TEST_CASE("HaproxyController::start: the admin socket answers with the current worker's pid") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    HaproxyController& haproxy = f.started();

    CHECK(haproxy.masterAlive());
    CHECK(haproxy.masterPid() > 0);
    CHECK(haproxy.options().master_socket_path == f.dir + "/master.sock");
    StatusOr<int> worker = haproxy.workerPid();
    REQUIRE(worker.ok());
    StatusOr<ShowInfo> info = showInfo(haproxy.admin());
    REQUIRE_MESSAGE(info.ok(), info.status().message());
    CHECK(info->pid == *worker);
    CHECK(info->version == binary.version);
    const ShowProc proc = requireShowProc(haproxy);
    CHECK(proc.master.pid == haproxy.masterPid());
    CHECK(proc.master.reloads == 0);
    CHECK(proc.failed_reloads == 0);
    CHECK(haproxy.oldWorkerCount().value_or(-1) == 0);

    const serve::testing::HttpResult gen = httpGet(f.url("/gen"));
    CHECK(gen.status == 200);
    CHECK(gen.body == "generation-1");
    const serve::testing::HttpResult unrouted = httpGet(f.url("/app/x"));
    CHECK(unrouted.status == 404);
    CHECK(unrouted.body == "no route");

    // `-S <path>,mode,600` is honoured by both versions (umask would give 0755).
    struct stat st {};
    REQUIRE(::stat(haproxy.options().master_socket_path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(std::filesystem::exists(f.dir + "/logs/haproxy.stderr.log"));
    CHECK(std::filesystem::exists(f.dir + "/logs/haproxy.stdout.log"));

    Status again = haproxy.start();
    CHECK(again.code() == absl::StatusCode::kFailedPrecondition);
  }
}

TEST_CASE("HaproxyController::validate returns HAProxy's ALERT lines and start spawns nothing") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    f.writeConfig(f.config("generation-1"));
    HaproxyController& haproxy = f.create();
    CHECK(haproxy.validate(f.config_path).ok());

    const int bad_line = f.configLines() + 1;
    f.writeConfig(f.config("generation-1") + "    bogus_directive here\n");
    Status invalid = haproxy.validate(f.config_path);
    REQUIRE_FALSE(invalid.ok());
    CHECK(invalid.code() == absl::StatusCode::kInvalidArgument);
    const std::string expected = "[ALERT] config : parsing [" + f.config_path + ":" +
                                 std::to_string(bad_line) +
                                 "] : unknown keyword 'bogus_directive' in 'backend' section";
    CHECK_MESSAGE(messageOf(invalid).find(expected) != std::string::npos, messageOf(invalid));
    CHECK(messageOf(invalid).find("haproxy -c rejected " + f.config_path + " (exit code 1):") == 0);

    Status started = haproxy.start();
    CHECK(started.code() == absl::StatusCode::kInvalidArgument);
    CHECK(messageOf(started).find(expected) != std::string::npos);
    CHECK(haproxy.masterPid() == -1);
    CHECK(livePidsWithArg(f.config_path).empty());
  }
}

TEST_CASE("HaproxyController::start fails with HAProxy's stderr when the master exits") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    // Passes `haproxy -c`, but the port is taken (without SO_REUSEPORT, which HAProxy uses).
    const int blocker = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(f.http_port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(blocker, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(::listen(blocker, 1) == 0);
    f.writeConfig(f.config("generation-1"));
    HaproxyController& haproxy = f.create();
    Status started = haproxy.start();
    ::close(blocker);
    CHECK(started.code() == absl::StatusCode::kUnavailable);
    const std::string message = messageOf(started);
    CHECK_MESSAGE(message.find("start: the HAProxy master exited (exit code 1); tail of " + f.dir +
                               "/logs/haproxy.stderr.log:\n") == 0,
                  message);
    CHECK_MESSAGE(message.find("cannot bind socket") != std::string::npos, message);
    CHECK_MESSAGE(
        message.find("[127.0.0.1:" + std::to_string(f.http_port) + "]") != std::string::npos,
        message);
    CHECK(haproxy.masterPid() == -1);
    CHECK(livePidsWithArg(f.config_path).empty());
  }
}

TEST_CASE("HaproxyController::start gives up when no worker answers on the admin socket") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    // The config's stats socket is elsewhere, so the expected admin socket never answers.
    std::string config = f.config("generation-1");
    config.replace(config.find(f.admin_socket), f.admin_socket.size(), f.dir + "/other.sock");
    f.writeConfig(config);
    HaproxyController& haproxy = f.create(/*startup_timeout_s=*/1);
    const Clock::time_point started_at = Clock::now();
    Status started = haproxy.start();
    CHECK(Clock::now() - started_at < milliseconds(5000));
    CHECK(started.code() == absl::StatusCode::kDeadlineExceeded);
    CHECK_MESSAGE(
        messageOf(started).find("start: no HAProxy worker took over within 1s (last "
                                "seen: " +
                                f.admin_socket + ": connect: No such file or directory)") == 0,
        messageOf(started));
    CHECK(haproxy.masterPid() == -1);
    CHECK(livePidsWithArg(f.config_path).empty());
  }
}

TEST_CASE("HaproxyController::reload: a new worker takes over, the old one finishes and goes") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    HaproxyController& haproxy = f.started("generation-1");
    const int first = haproxy.workerPid().value_or(-1);
    REQUIRE(first > 0);

    HeldRequest held(f.http_port);  // accepted by the first worker
    f.writeConfig(f.config("generation-2"));
    StatusOr<ReloadOutcome> outcome = haproxy.reload();
    REQUIRE_MESSAGE(outcome.ok(), outcome.status().message());
    CHECK(outcome->old_worker_pid == first);
    CHECK(outcome->new_worker_pid != first);
    CHECK(outcome->duration < milliseconds(10000));
    CHECK(haproxy.workerPid().value_or(-1) == outcome->new_worker_pid);
    CHECK(showInfo(haproxy.admin()).value_or(ShowInfo{}).pid == outcome->new_worker_pid);
    CHECK(httpGet(f.url("/gen")).body == "generation-2");

    ShowProc proc = requireShowProc(haproxy);
    CHECK(proc.master.reloads == 1);
    CHECK(proc.failed_reloads == 0);
    REQUIRE(proc.old_workers.size() == 1);
    CHECK(proc.old_workers[0].pid == first);
    CHECK(haproxy.oldWorkerCount().value_or(-1) == 1);

    // The old worker answers its in-flight request from the old config, then exits.
    const std::string response = held.finish();
    CHECK_MESSAGE(response.find("\r\n\r\ngeneration-1") != std::string::npos, response);
    CHECK(eventually([&] { return haproxy.oldWorkerCount().value_or(-1) == 0; }));
    CHECK(eventually([&] { return processGone(first); }));
  }
}

TEST_CASE("HaproxyController::reload of an invalid config fails and the old worker keeps serving") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    HaproxyController& haproxy = f.started("generation-1");
    const int first = haproxy.workerPid().value_or(-1);
    REQUIRE(first > 0);

    // Written directly, without validate(): what the master does with a bad config.
    const int bad_line = f.configLines() + 1;
    f.writeConfig(f.config("generation-1") + "    bogus_directive here\n");
    StatusOr<ReloadOutcome> outcome = haproxy.reload();
    REQUIRE_FALSE(outcome.ok());
    CHECK(outcome.status().code() == absl::StatusCode::kAborted);
    const std::string message = messageOf(outcome.status());
    CHECK_MESSAGE(message.find("kept worker " + std::to_string(first) +
                               " serving the previous config") != std::string::npos,
                  message);
    CHECK_MESSAGE(
        message.find("[ALERT] config : parsing [" + f.config_path + ":" + std::to_string(bad_line) +
                     "] : unknown keyword 'bogus_directive' in 'backend' section") !=
            std::string::npos,
        message);

    const ShowProc proc = requireShowProc(haproxy);
    CHECK(proc.failed_reloads == 1);
    CHECK(proc.master.reloads == 1);
    CHECK(proc.currentWorkerPid() == first);
    CHECK(haproxy.masterAlive());
    CHECK(httpGet(f.url("/gen")).body == "generation-1");

    // Fixed, the next reload goes through.
    f.writeConfig(f.config("generation-2"));
    StatusOr<ReloadOutcome> fixed = haproxy.reload();
    REQUIRE_MESSAGE(fixed.ok(), fixed.status().message());
    CHECK(fixed->old_worker_pid == first);
    CHECK(httpGet(f.url("/gen")).body == "generation-2");
    // "[failed: N]" counts failures since the last successful reload.
    CHECK(requireShowProc(haproxy).failed_reloads == 0);
  }
}

TEST_CASE("applyCommands: every state-changing command kind answers only blank lines") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    HaproxyController& haproxy = f.started();
    AdminSocketClient& admin = haproxy.admin();
    CHECK(httpGet(f.url("/app/x")).body == "no route");

    const std::string origin = std::to_string(f.origin_port);
    // One call per command, so that each kind is checked on its own against this version.
    const std::vector<std::string> kinds = {
        "set server be_app/slot1 addr 127.0.0.1 port " + origin,  // answers its change report
        "set server be_app/slot1 addr 127.0.0.1 port " + origin,  // ... or "no need to change"
        "set server be_app/slot1 check-port " + origin,
        "set server be_app/slot1 state ready",
        "set server be_app/slot1 health up",
        "set server be_app/slot1 weight 10",
        "set maxconn server be_app/slot1 7",
        "add map " + f.map_path + " /app be_app",
        "add map " + f.map_path + " /old be_app",
        "set map " + f.map_path + " /old be_other",
        "del map " + f.map_path + " /old",
        "add map " + f.map_path + " /spaced a\\ b",  // spaces in a value are escaped
        "del map " + f.map_path + " /spaced",
        "set server be_app/slot2 addr 127.0.0.2 port 30002",
        "set server be_app/slot2 state drain",
        "set server be_app/slot2 state maint",
        "set server be_app/slot2 health down",
    };
    for (const std::string& command : kinds) {
      CAPTURE(command);
      Status status = applyCommands(admin, {command});
      CHECK_MESSAGE(status.ok(), status.message());
    }

    const serve::testing::HttpResult routed = httpGet(f.url("/app/x"));
    CHECK(routed.status == 200);
    CHECK(routed.body == "origin");

    StatusOr<std::vector<MapEntry>> map = showMap(admin, f.map_path);
    REQUIRE_MESSAGE(map.ok(), map.status().message());
    CHECK(*map == std::vector<MapEntry>{{"/app", "be_app"}});
    REQUIRE(applyCommands(admin, {"add map " + f.map_path + " /spaced a\\ b"}).ok());
    CHECK(showMap(admin, f.map_path).value_or(std::vector<MapEntry>{}).back() ==
          MapEntry{"/spaced", "a b"});
    REQUIRE(applyCommands(admin, {"del map " + f.map_path + " /spaced"}).ok());

    StatusOr<std::vector<ServerStateRow>> servers = showServersState(admin);
    REQUIRE_MESSAGE(servers.ok(), servers.status().message());
    REQUIRE(servers->size() == 2);
    CHECK((*servers)[0].server == "slot1");
    CHECK((*servers)[0].port == f.origin_port);
    CHECK((*servers)[0].check_port == f.origin_port);
    CHECK_FALSE((*servers)[0].inMaintenance());
    CHECK((*servers)[1].addr == "127.0.0.2");
    CHECK((*servers)[1].port == 30002);
    CHECK((*servers)[1].inMaintenance());

    StatusOr<std::vector<StatRow>> stats = showStat(admin);
    REQUIRE_MESSAGE(stats.ok(), stats.status().message());
    std::map<std::string, StatRow> by_name;
    for (const StatRow& row : *stats) {
      by_name[row.proxy + "/" + row.server] = row;
    }
    CHECK(by_name["be_app/slot1"].status == "UP");
    CHECK(by_name["be_app/slot1"].slim == 7);
    CHECK(by_name["be_app/slot1"].weight == 10);
    CHECK(by_name["be_app/slot1"].addr == "127.0.0.1:" + origin);
    CHECK(by_name["be_app/slot2"].status == "MAINT");

    // Errors quote HAProxy's reply and name the batch.
    Status unknown = applyCommands(admin, {"set server be_app/nosuch state ready"});
    CHECK(unknown.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(messageOf(unknown) ==
          "HAProxy rejected runtime commands [set server be_app/nosuch state ready]: \"No such "
          "server.\"");
    Status missing = applyCommands(
        admin, {"set server be_app/slot1 state ready", "del map " + f.map_path + " /nothing"});
    CHECK(messageOf(missing) ==
          "HAProxy rejected runtime commands [set server be_app/slot1 "
          "state ready; del map " +
              f.map_path + " /nothing]: \"Key not found.\"");
    Status bad_addr = applyCommands(admin, {"set server be_app/slot1 addr 127.0.0.1 port x"});
    CHECK_MESSAGE(
        messageOf(bad_addr).find("problem converting port 'x' to an int") != std::string::npos,
        messageOf(bad_addr));

    // A batch of several commands in one connection.
    Status batch = applyCommands(
        admin, {"del map " + f.map_path + " /app", "set server be_app/slot1 state maint",
                "set server be_app/slot1 addr 127.0.0.1 port 1"});
    CHECK_MESSAGE(batch.ok(), batch.message());
    CHECK(httpGet(f.url("/app/x")).body == "no route");
  }
}

TEST_CASE("HaproxyController::restart after the master was killed") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    HaproxyController& haproxy = f.started();
    const int master = haproxy.masterPid();
    const int worker = haproxy.workerPid().value_or(-1);
    REQUIRE(worker > 0);

    REQUIRE(::kill(master, SIGKILL) == 0);
    CHECK(eventually([&] { return !haproxy.masterAlive(); }));
    CHECK(haproxy.masterPid() == -1);
    CHECK(haproxy.workerPid().status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(haproxy.reload().status().code() == absl::StatusCode::kFailedPrecondition);

    Status restarted = haproxy.restart();
    REQUIRE_MESSAGE(restarted.ok(), restarted.message());
    CHECK(haproxy.masterPid() > 0);
    CHECK(haproxy.masterPid() != master);
    const int new_worker = haproxy.workerPid().value_or(-1);
    CHECK(new_worker > 0);
    CHECK(new_worker != worker);
    CHECK(processGone(worker));  // the orphaned worker was killed, or had exited
    CHECK(httpGet(f.url("/gen")).body == "generation-1");
    CHECK(haproxy.restart().code() == absl::StatusCode::kFailedPrecondition);
  }
}

TEST_CASE("HaproxyController::stop leaves no HAProxy process behind") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    HaproxyController& haproxy = f.started();
    HeldRequest held(f.http_port);  // keeps an old worker alive through the reload
    f.writeConfig(f.config("generation-2"));
    StatusOr<ReloadOutcome> outcome = haproxy.reload();
    REQUIRE_MESSAGE(outcome.ok(), outcome.status().message());
    const std::vector<int> pids = {haproxy.masterPid(), outcome->old_worker_pid,
                                   outcome->new_worker_pid};
    CHECK(livePidsWithArg(f.config_path).size() == 3);

    // The held request never completes, so the soft stop runs out of grace and the old worker
    // is stopped hard.
    const Clock::time_point started = Clock::now();
    haproxy.stop(0.5);
    CHECK(Clock::now() - started < milliseconds(4000));
    CHECK(haproxy.masterPid() == -1);
    CHECK_FALSE(haproxy.masterAlive());
    for (int pid : pids) {
      CAPTURE(pid);
      CHECK(processGone(pid));
    }
    CHECK(livePidsWithArg(f.config_path).empty());
  }
}

TEST_CASE("HaproxyController::stop soft-stops an idle HAProxy without waiting out the grace") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    Fixture f(binary);
    HaproxyController& haproxy = f.started();
    const int worker = haproxy.workerPid().value_or(-1);
    const Clock::time_point started = Clock::now();
    haproxy.stop(10);  // SIGUSR1: the idle worker exits at once, then the master
    CHECK(Clock::now() - started < milliseconds(3000));
    CHECK(processGone(worker));
    CHECK(livePidsWithArg(f.config_path).empty());
    // Started again afterwards; the destructor stops it.
    REQUIRE(haproxy.start().ok());
    const int master = haproxy.masterPid();
    f.controller.reset();
    CHECK(processGone(master));
    CHECK(livePidsWithArg(f.config_path).empty());
  }
}

TEST_CASE("HaproxyController::resolveBinary") {
  char dir_template[] = "/tmp/haproxy-bin-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string fake = dir + "/haproxy";
  std::ofstream(fake) << "#!/bin/sh\n";
  const std::string not_executable = dir + "/plain";
  std::ofstream(not_executable) << "x\n";
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);

  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const std::string& name) -> std::optional<std::string> {
      auto it = vars.find(name);
      return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
  };
  CHECK(HaproxyController::resolveBinary(fake, env({})).value_or("") == fake);
  CHECK(HaproxyController::resolveBinary("", env({{"RAY_SERVE_HAPROXY_BINARY_PATH", fake}}))
            .value_or("") == fake);
  CHECK(HaproxyController::resolveBinary("", env({{"PATH", "/nonexistent:" + dir}})).value_or("") ==
        fake);

  StatusOr<std::string> missing = HaproxyController::resolveBinary(
      "", env({{"RAY_SERVE_HAPROXY_BINARY_PATH", "/nonexistent/haproxy"}}));
  CHECK(missing.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(messageOf(missing.status()) ==
        "RAY_SERVE_HAPROXY_BINARY_PATH=/nonexistent/haproxy: not an executable file (No such file "
        "or directory)");
  CHECK(messageOf(HaproxyController::resolveBinary(not_executable, env({})).status()) ==
        "RAY_SERVE_HAPROXY_BINARY_PATH=" + not_executable +
            ": not an executable file (not executable)");
  CHECK(messageOf(HaproxyController::resolveBinary(dir, env({})).status()) ==
        "RAY_SERVE_HAPROXY_BINARY_PATH=" + dir + ": not an executable file (not a regular file)");
  // Debian puts haproxy in /usr/sbin, which a non-root PATH often lacks.
  if (::access("/usr/sbin/haproxy", X_OK) == 0) {
    CHECK(HaproxyController::resolveBinary("", env({{"PATH", "/nonexistent"}})).value_or("") ==
          "/usr/sbin/haproxy");
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace serve::manager
